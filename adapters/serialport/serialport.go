// Package serialport keeps a link to a board on a USB serial port
// (go.bug.st/serial): it opens the port by path or by USB identity, reads
// newline-framed lines (JSON lines become readings, anything else console log
// lines), writes commands as one line each, and re-opens the port with
// jittered backoff after an unplug. Each Port.Run owns every goroutine it
// starts (one reader and one writer per open port) and returns only after
// they have exited; cancelling Run's context stops them.
package serialport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/backoff"
)

// The core starts and stops a Port through gateway.Transport.
var _ gateway.Transport = (*Port)(nil)

// Timing and size limits. The contract fixes the line limit, the retry
// bounds and "offline within 1 s" of an unplug (the read error is immediate).
const (
	// MaxLineLen is the longest serial line kept (contract: 4 KiB); longer
	// lines are dropped whole and counted as malformed.
	MaxLineLen = 4096
	// firstRetry is the first re-open delay before jitter (contract: first
	// retry within 1 s): the first re-open comes 0.3–0.6 s after the loss,
	// leaving room for a busy machine's scheduling; each failure doubles it
	// up to maxRetry.
	firstRetry = 600 * time.Millisecond
	// maxRetry caps the re-open delay (contract: cap 30 s).
	maxRetry = 30 * time.Second
	// presencePoll is how often a missing port is looked for while waiting
	// to retry, so a replugged board is found at once instead of after the
	// backoff. Only a stat of the configured path (or a listing of /dev):
	// cheap enough for 5 Hz.
	presencePoll = 200 * time.Millisecond
	// writeTimeout bounds one command write, below the hub's 1.8 s command
	// timeout so the browser gets this adapter's error, not a generic one.
	// A board that never reads its serial input fills the OS buffer and
	// would otherwise block the writer forever.
	writeTimeout = time.Second
	// lineQueue is how many lines the reader may get ahead of the session
	// loop; when full the reader waits and the OS buffers the port.
	lineQueue = 64
	// resetPulse is how long EN is held low for reset_on_open (esptool uses 100 ms).
	resetPulse = 100 * time.Millisecond
)

// Port keeps one serial board link up until its context ends.
type Port struct {
	cfg gateway.DeviceConfig
	log *slog.Logger

	// list enumerates serial ports for match; tests replace it.
	list func() ([]*enumerator.PortDetails, error)

	// Only touched by Run's goroutine.
	modemWarned bool   // the "no modem control lines" warning was logged
	lastProblem string // the open problem logged last, so each is logged once
}

// New returns a Port for a serial device.
func New(cfg gateway.DeviceConfig, log *slog.Logger) *Port {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Baud <= 0 {
		cfg.Baud = 115200
	}
	if cfg.CommandFormat == "" {
		cfg.CommandFormat = gateway.FormatText
	}
	return &Port{
		cfg:  cfg,
		log:  log.With("device", cfg.ID, "transport", gateway.TransportSerial),
		list: func() ([]*enumerator.PortDetails, error) { return enumerator.GetDetailedPortsList() },
	}
}

// errNotFound marks an open failure because the port is not there (yet).
var errNotFound = errors.New("not found")

// Run implements gateway.Transport: open, serve until the port fails, wait
// with jittered backoff (cut short when a missing port appears), repeat.
// The backoff starts again from firstRetry after every link loss and grows
// while opening keeps failing.
// It returns nil when ctx ends, or an error the hub gave that retrying
// cannot fix (an unknown device).
func (p *Port) Run(ctx context.Context, sink gateway.Sink) error {
	attempt := 0
	for ctx.Err() == nil {
		c, err := p.open(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.problem(sink, err)
		} else {
			p.lastProblem = ""
			reason, err := p.serve(ctx, sink, c)
			if err != nil {
				if errors.Is(err, gateway.ErrShutdown) {
					return nil
				}
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			p.log.Warn("serial link lost; re-opening", "addr", c.path, "reason", reason)
			attempt = 0 // every loss gets a first retry within 1 s
		}
		if !p.waitRetry(ctx, retry.Delay(attempt)) {
			return nil
		}
		attempt++
	}
	return nil
}

// retry is the re-open delay policy: the first re-open 0.3–0.6 s after the
// loss, doubling up to maxRetry.
var retry = backoff.Policy{Base: firstRetry, Cap: maxRetry}

// waitRetry waits d, or less when the port was missing and appears. It
// reports false when ctx ended.
func (p *Port) waitRetry(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(presencePoll)
	defer tick.Stop()
	mark := p.presence()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-tick.C:
			now := p.presence()
			if now != mark && now != "" {
				return true // a port appeared (or the tty set changed): try now
			}
			mark = now
		}
	}
}

// presence is a cheap fingerprint of whether the board's port can be there:
// with port, the path it resolves to ("" while missing); with match, the
// names of USB serial ttys in /dev (a replug adds or renames one). Opening
// (and the enumerator, which probes ttyS ports) waits for the backoff.
func (p *Port) presence() string {
	if p.cfg.Port != "" {
		real, err := filepath.EvalSymlinks(p.cfg.Port)
		if err != nil {
			return ""
		}
		return real
	}
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "ttyUSB") || strings.HasPrefix(n, "ttyACM") {
			b.WriteString(n)
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// problem logs an open failure once per distinct problem (at the level the
// operator needs) and shows it to browsers as the offline reason.
func (p *Port) problem(sink gateway.Sink, err error) {
	msg, level := describeOpenError(err)
	sink.SetOfflineReason(p.cfg.ID, msg)
	if msg == p.lastProblem {
		p.log.Debug("serial port still unavailable", "err", err)
		return
	}
	p.lastProblem = msg
	p.log.Log(context.Background(), level, msg, "addr", p.target(), "err", err)
}

// target names the configured port for logs: the path or the match.
func (p *Port) target() string {
	if p.cfg.Port != "" {
		return p.cfg.Port
	}
	return matchString(p.cfg.Match)
}

func matchString(m *gateway.SerialMatch) string {
	if m == nil {
		return "match{}"
	}
	s := "vid=" + orAny(m.VID) + " pid=" + orAny(m.PID)
	if m.Serial != "" {
		s += " serial=" + m.Serial
	}
	return s
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return strings.ToLower(s)
}

// describeOpenError turns an open failure into what a user should read.
func describeOpenError(err error) (string, slog.Level) {
	var pe *serial.PortError
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, fs.ErrNotExist):
		return "waiting for the board: serial port not found (unplugged?)", slog.LevelWarn
	case errors.Is(err, fs.ErrPermission), errors.As(err, &pe) && pe.Code() == serial.PermissionDenied:
		return "permission denied on the serial port: add the gateway's user to the dialout group (sudo usermod -aG dialout USER) and log in again", slog.LevelError
	case errors.Is(err, syscall.EBUSY), errors.As(err, &pe) && pe.Code() == serial.PortBusy:
		return "serial port busy: another program has it open (a serial monitor, esptool, ModemManager?)", slog.LevelError
	default:
		return "cannot open the serial port: " + err.Error(), slog.LevelWarn
	}
}

// resolve finds the device node to open: the configured path with its
// symlinks (such as /dev/serial/by-id/…) followed now, or the first port the
// enumerator lists with the configured USB identity.
func (p *Port) resolve() (string, error) {
	if p.cfg.Port != "" {
		real, err := filepath.EvalSymlinks(p.cfg.Port)
		if err != nil {
			return "", fmt.Errorf("serial %s: %w", p.cfg.Port, errNotFound)
		}
		return real, nil
	}
	ports, err := p.list()
	if err != nil {
		return "", fmt.Errorf("serial %s: list ports: %w", p.target(), err)
	}
	var found []*enumerator.PortDetails
	for _, d := range ports {
		if d.Name != "" && d.IsUSB && matches(p.cfg.Match, d) {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("serial %s: no USB serial port has this identity: %w", p.target(), errNotFound)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	if len(found) > 1 {
		names := make([]string, len(found))
		for i, d := range found {
			names[i] = d.Name + " (serial " + d.SerialNumber + ")"
		}
		p.log.Warn("several serial ports match; using the first (add match.serial to choose)",
			"match", p.target(), "ports", strings.Join(names, ", "))
	}
	return found[0].Name, nil
}

func matches(m *gateway.SerialMatch, d *enumerator.PortDetails) bool {
	if m == nil {
		return false
	}
	return (m.VID == "" || strings.EqualFold(m.VID, d.VID)) &&
		(m.PID == "" || strings.EqualFold(m.PID, d.PID)) &&
		(m.Serial == "" || m.Serial == d.SerialNumber)
}

// conn is one open port: the library's port reads (and configures the
// line); w, a second descriptor on the same tty, writes with a deadline.
type conn struct {
	path string // the device node opened, symlinks resolved
	port serial.Port
	w    deadlineWriter // nil where the OS gives none: port.Write is used
}

func (c *conn) close() {
	if c.w != nil {
		c.w.Close()
	}
	c.port.Close()
}

// open resolves and opens the port without pulsing DTR/RTS (unless
// reset_on_open), and pulses the reset when asked.
func (p *Port) open(ctx context.Context) (*conn, error) {
	path, err := p.resolve()
	if err != nil {
		return nil, err
	}
	// The write descriptor is opened first: the library takes the tty for
	// itself (TIOCEXCL) once it has opened it.
	w, err := openWriter(path)
	if err != nil {
		return nil, fmt.Errorf("serial %s: open: %w", path, err)
	}
	mode := &serial.Mode{BaudRate: p.cfg.Baud}
	if p.cfg.ResetOnOpen {
		mode.InitialStatusBits = &serial.ModemOutputBits{DTR: false, RTS: false}
	} else {
		// Linux raises DTR and RTS when a tty opens; asserting both again
		// changes nothing, and DTR = RTS keeps the ESP32 auto-reset circuit
		// (DTR→IO0, RTS→EN) idle, so opening does not reboot the board.
		mode.InitialStatusBits = &serial.ModemOutputBits{DTR: true, RTS: true}
	}
	port, err := serial.Open(path, mode)
	if err != nil && isModemBitsError(err) {
		p.warnNoModemLines(path, err)
		mode.InitialStatusBits = nil
		port, err = serial.Open(path, mode)
	}
	if err != nil {
		if w != nil {
			w.Close()
		}
		return nil, fmt.Errorf("serial %s: open: %w", path, err)
	}
	c := &conn{path: path, port: port, w: w}
	if p.cfg.ResetOnOpen {
		if err := pulseReset(ctx, port); err != nil {
			p.warnNoModemLines(path, err)
		}
	}
	return c, nil
}

// isModemBitsError reports the library's failure to read or set DTR/RTS,
// which ptys and some virtual ports refuse ("inappropriate ioctl").
func isModemBitsError(err error) bool {
	var pe *serial.PortError
	return errors.As(err, &pe) && pe.Code() == serial.InvalidSerialPort && strings.Contains(pe.Error(), "modem bits")
}

func (p *Port) warnNoModemLines(path string, err error) {
	if p.modemWarned {
		return
	}
	p.modemWarned = true
	p.log.Warn("serial port has no modem control lines (a pty or virtual port?): opened without setting DTR/RTS",
		"addr", path, "err", err)
}

// pulseReset resets an ESP32 through its auto-reset circuit: EN low (RTS
// asserted, DTR not) for resetPulse, then released, as esptool's hard reset.
func pulseReset(ctx context.Context, port serial.Port) error {
	if err := port.SetDTR(false); err != nil {
		return fmt.Errorf("reset_on_open: set DTR: %w", err)
	}
	if err := port.SetRTS(true); err != nil {
		return fmt.Errorf("reset_on_open: set RTS: %w", err)
	}
	t := time.NewTimer(resetPulse)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	if err := port.SetRTS(false); err != nil {
		return fmt.Errorf("reset_on_open: clear RTS: %w", err)
	}
	return nil
}
