package serialport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/gateway/wire"
)

// item is what the reader hands the session loop, in stream order: a line,
// an over-long line that was dropped, or the error that ended reading.
type item struct {
	line    []byte
	tooLong bool
	err     error
}

// writeReq is one command line for the writer; done gets exactly one answer.
type writeReq struct {
	ctx  context.Context
	line []byte
	done chan error // buffered: the writer never waits for the sender
}

// serve runs one open port until it fails or ctx ends: the reader and the
// writer goroutines are started here and have exited when serve returns,
// and the port is closed. reason says why the link went down; err is set only
// when the hub refused the link.
func (p *Port) serve(ctx context.Context, sink gateway.Sink, c *conn) (reason string, err error) {
	sctx, cancel := context.WithCancel(ctx)
	items := make(chan item, lineQueue)
	writes := make(chan writeReq)
	var wg sync.WaitGroup
	wg.Go(func() { readLoop(sctx, c.port, items) })
	wg.Go(func() { p.writeLoop(sctx, c, writes) })
	defer func() {
		cancel()
		c.close() // unblocks the reader's Read and the writer's Write
		wg.Wait()
	}()

	send := p.sendFunc(sctx, c.path, writes)
	link, err := sink.Attach(p.cfg.ID, send)
	if err != nil {
		return "", fmt.Errorf("serial %s: %w", p.cfg.ID, err)
	}
	p.log.Info("serial port open", "addr", c.path, "baud", p.cfg.Baud)

	silence := time.Duration(p.cfg.SilenceTimeout)
	var quiet <-chan time.Time // fires when the board has been silent too long
	resetQuiet := func() {}
	if silence > 0 {
		t := time.NewTimer(silence)
		defer t.Stop()
		quiet = t.C
		resetQuiet = func() { t.Reset(silence) }
	}

	// This loop is the single owner of the link: it turns lines into
	// readings and log lines, detaches on silence and on the reader's
	// error, and attaches again when a silent board speaks.
	online := true
	for {
		select {
		case <-ctx.Done():
			reason := gateway.StopReason(ctx)
			link.Detach(reason)
			return reason, nil
		case <-quiet:
			reason := fmt.Sprintf("no output for %s (silence_timeout)", silence)
			link.Detach(reason)
			online = false
			p.log.Warn("board silent: marked offline until it prints again", "addr", c.path, "silence_timeout", silence)
		case it := <-items:
			if it.err != nil {
				reason := p.lostReason(c.path, it.err)
				link.Detach(reason)
				return reason, nil
			}
			if !it.tooLong && len(bytes.TrimSpace(it.line)) == 0 {
				continue // empty lines are ignored
			}
			resetQuiet()
			if !online {
				l, err := sink.Attach(p.cfg.ID, send)
				if err != nil {
					return "", fmt.Errorf("serial %s: %w", p.cfg.ID, err)
				}
				link, online = l, true
				p.log.Info("board printing again: online", "addr", c.path)
			}
			if it.tooLong {
				if link.Malformed() {
					p.log.Debug("serial line over the limit dropped", "addr", c.path, "limit", MaxLineLen)
				}
				continue
			}
			p.handle(link, it.line)
		}
	}
}

// handle routes one line: JSON readings to the hub, anything else to the
// device's console. A line that looks like JSON but is not is counted as
// malformed and still shown in the console, where the user debugs.
func (p *Port) handle(link gateway.Link, line []byte) {
	rs, err := wire.Parse(line)
	if len(rs) > 0 {
		link.Publish(rs...)
	}
	if err == nil {
		return
	}
	if !errors.Is(err, wire.ErrNotJSON) {
		if link.Malformed() {
			p.log.Debug("malformed JSON line", "err", err, "line", wire.LogLine(line[:min(len(line), 120)]))
		}
		if len(rs) > 0 {
			return // a partly good array is not console text
		}
	}
	if s := wire.LogLine(line); s != "" {
		link.Log(s)
	}
}

// lostReason is the offline reason browsers see when reading fails.
func (p *Port) lostReason(path string, err error) string {
	name := path
	if p.cfg.Port != "" {
		name = p.cfg.Port
	}
	return fmt.Sprintf("serial port %s lost (unplugged?): %v", name, err)
}

// readLoop frames the port's bytes into lines and hands them on in order;
// it ends after handing on the read error, or when ctx ends.
func readLoop(ctx context.Context, r io.Reader, items chan<- item) {
	lr := wire.NewLineReader(r, MaxLineLen)
	for {
		line, err := lr.Next()
		var it item
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			it.tooLong = true
		case err != nil:
			it.err = err
		default:
			it.line = bytes.Clone(line)
		}
		select {
		case items <- it:
		case <-ctx.Done():
			return
		}
		if it.err != nil {
			return
		}
	}
}

// sendFunc is the link's SendFunc: it hands the command line to the writer
// and returns once it is written, or with the write's error, a timeout, or
// ErrOffline when the port is closing.
func (p *Port) sendFunc(sctx context.Context, path string, writes chan<- writeReq) gateway.SendFunc {
	return func(ctx context.Context, cmd gateway.Command) error {
		line := wire.EncodeCommand(p.cfg.CommandFormat, cmd)
		if bytes.ContainsAny(line, "\r\n") {
			return fmt.Errorf("serial %s: %w: a command must fit on one line", path, gateway.ErrBadCommand)
		}
		line = append(line, '\n')
		ctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		req := writeReq{ctx: ctx, line: line, done: make(chan error, 1)}
		select {
		case writes <- req:
		case <-sctx.Done():
			return fmt.Errorf("serial %s: %w", path, gateway.ErrOffline)
		case <-ctx.Done():
			return fmt.Errorf("serial %s: write: a previous command is still being written: %w", path, ctx.Err())
		}
		select {
		case err := <-req.done:
			return err
		case <-ctx.Done():
			return fmt.Errorf("serial %s: write: %w", path, ctx.Err())
		}
	}
}

// writeLoop is the port's only writer: one command line at a time, each
// bounded by its request's deadline.
func (p *Port) writeLoop(ctx context.Context, c *conn, writes <-chan writeReq) {
	dirty := false // a timed-out write left part of a line on the wire
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-writes:
			if err := req.ctx.Err(); err != nil {
				req.done <- fmt.Errorf("serial %s: write: %w", c.path, err)
				continue
			}
			line := req.line
			if dirty {
				// End the fragment so the board's line reader resynchronises.
				line = append([]byte{'\n'}, line...)
			}
			deadline, _ := req.ctx.Deadline()
			n, err := c.write(line, deadline)
			if n > 0 {
				dirty = n < len(line)
			}
			req.done <- writeError(c.path, err)
		}
	}
}

func (c *conn) write(b []byte, deadline time.Time) (int, error) {
	if c.w == nil {
		return c.port.Write(b)
	}
	if err := c.w.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}

// writeError maps a write failure to what the hub and the browser need.
func writeError(path string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("serial %s: write: the board is not reading its serial input: %w", path, context.DeadlineExceeded)
	case errors.Is(err, os.ErrClosed):
		return fmt.Errorf("serial %s: %w", path, gateway.ErrOffline)
	default:
		return fmt.Errorf("serial %s: write: %v: %w", path, err, gateway.ErrOffline)
	}
}
