//go:build unix

package serialport

import (
	"os"
	"syscall"
	"time"
)

// deadlineWriter is a write descriptor whose writes can time out and whose
// Close wakes a blocked Write.
type deadlineWriter interface {
	Write(p []byte) (int, error)
	SetWriteDeadline(t time.Time) error
	Close() error
}

// openWriter opens a second, non-blocking descriptor on the tty for writing.
// go.bug.st/serial's Write has no timeout and neither Close nor a flush wakes
// it (measured on a pty); through the runtime poller this one honours a
// deadline and unblocks on Close. Both descriptors share the tty's settings.
func openWriter(path string) (deadlineWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}
