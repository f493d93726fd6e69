// Package ptyboard is a board on USB for tests: the master side of a real
// pty, whose slave the gateway opens by path as it opens /dev/ttyUSB0.
// Unplug hangs the tty up, as pulling the cable does. ESP32Boot is what a
// real board prints before its sketch runs.
package ptyboard

import (
	"bufio"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Open opens a pty whose master Close really hangs up the tty.
// creack/pty returns a master in blocking mode (it calls Fd() for its
// ioctls); os.File.Close cannot wake a Read blocked on such a descriptor and
// only closes it once that Read returns, so a reader goroutine on the master
// would keep the tty alive and the "unplug" would never happen. A
// non-blocking duplicate goes through the runtime poller, whose Close wakes
// the Read and closes the descriptor at once. Close-on-exec, so no gateway
// process started meanwhile inherits it.
func Open() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err == nil {
		err = syscall.SetNonblock(fd, true)
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), s, nil
}

// Board is a fake board on a pty; it is unplugged when the test ends.
type Board struct {
	Path string // the slave, /dev/pts/N: the gateway's port

	t      testing.TB
	master *os.File
	slave  *os.File
	lines  chan string   // lines the gateway wrote to the board
	done   chan struct{} // closed when the line reader has exited
}

// New plugs in a board that reads the lines the gateway writes (NextLine).
func New(t testing.TB) *Board {
	t.Helper()
	return open(t, true)
}

// NewNoReader plugs in a board that never reads what the gateway writes, as
// a sketch that never reads Serial.
func NewNoReader(t testing.TB) *Board {
	t.Helper()
	return open(t, false)
}

func open(t testing.TB, read bool) *Board {
	t.Helper()
	m, s, err := Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	// The slave stays open here too (the gateway opens it again by path):
	// reading a master whose slave has no open descriptor fails with EIO.
	b := &Board{Path: s.Name(), t: t, master: m, slave: s, lines: make(chan string, 64), done: make(chan struct{})}
	if !read {
		close(b.done)
	} else {
		go func() {
			defer close(b.done)
			sc := bufio.NewScanner(m)
			for sc.Scan() { // ends with EIO when the master closes
				b.lines <- sc.Text()
			}
		}()
	}
	t.Cleanup(b.Unplug)
	return b
}

// LinkAs points link at the board's port, replacing what link pointed at in
// one rename, as udev (re)creates a /dev/serial/by-id link when a board is
// plugged in.
func (b *Board) LinkAs(link string) {
	b.t.Helper()
	tmp := link + ".new"
	if err := os.Symlink(b.Path, tmp); err != nil {
		b.t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		b.t.Fatal(err)
	}
}

// Write sends bytes from the board to the gateway.
func (b *Board) Write(s string) {
	b.t.Helper()
	if _, err := b.master.WriteString(s); err != nil {
		b.t.Fatalf("board write: %v", err)
	}
}

// Unplug closes the master, as pulling the USB cable hangs up the tty. A
// second Unplug does nothing more.
func (b *Board) Unplug() {
	b.master.Close() // a second Close only errors
	b.slave.Close()
	<-b.done
}

// NextLine waits for the next line the gateway wrote to the board.
func (b *Board) NextLine(timeout time.Duration) (string, bool) {
	select {
	case l := <-b.lines:
		return l, true
	case <-time.After(timeout):
		return "", false
	}
}

// ESP32Boot is what a classic ESP32 prints on power-on before the sketch's
// first line: ROM banner, 2nd-stage bootloader with ANSI colour, an Arduino
// core log line, and line noise.
var ESP32Boot = strings.Join([]string{
	"\x00\xff\x00\xfe",
	"ets Jun  8 2016 00:22:57",
	"",
	"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
	"configsip: 0, SPIWP:0xee",
	"mode:DIO, clock div:1",
	"load:0x3fff0030,len:1184",
	"entry 0x400805e4",
	"\x1b[0;32mI (27) boot: ESP-IDF v5.1 2nd stage bootloader\x1b[0m",
	"[   1234][E][WiFiGeneric.cpp:1583] _eventCallback(): Reason: 2 - AUTH_EXPIRE",
	"bad utf-8: \xc3\x28 \xff end",
	"# debug: sensor warming up",
	"",
}, "\r\n")
