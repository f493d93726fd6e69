//go:build !unix

package serialport

import "time"

// deadlineWriter is a write descriptor whose writes can time out.
type deadlineWriter interface {
	Write(p []byte) (int, error)
	SetWriteDeadline(t time.Time) error
	Close() error
}

// openWriter has no second descriptor here: writes go through the port.
func openWriter(path string) (deadlineWriter, error) { return nil, nil }
