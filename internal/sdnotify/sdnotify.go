// Package sdnotify tells systemd how the service is doing, as sd_notify(3)
// does, with the standard library only (no cgo, no libsystemd).
//
// A Notifier is built once from the environment systemd gives a Type=notify
// service: NOTIFY_SOCKET (a path, or "@name" for an abstract socket),
// WATCHDOG_USEC and WATCHDOG_PID. Every method sends one datagram and
// returns; none blocks for longer than sendTimeout. Without NOTIFY_SOCKET
// (run by hand, in a container, in tests) every method is a no-op that
// returns nil, so callers need no "am I under systemd?" branches.
//
// What to send, and from where (the integrator wires this in main):
//
//   - Ready once the HTTP listener is bound and the board transports have
//     started: systemd then considers the unit started (Type=notify).
//   - Watchdog every WatchdogInterval, sent from the place that proves the
//     hub's own loop is alive — e.g. a tick that asks the hub for its state
//     and sends only when the answer comes back — never from a free-running
//     ticker goroutine of its own, which would keep pinging while the hub is
//     stuck and defeat WatchdogSec.
//   - Status with a one-line summary (boards online, browsers) when it
//     changes; systemctl status shows it.
//   - Stopping when shutdown begins.
//
// A Notifier holds no goroutines and no open sockets; it is safe for
// concurrent use.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// sendTimeout bounds one send. A datagram to a live systemd is queued at
// once; the bound only matters when the socket's receive queue is full
// (systemd stuck), and then the caller must not be held up with it.
const sendTimeout = 1 * time.Second

// Notifier sends state changes to systemd. The zero value, like a Notifier
// built without NOTIFY_SOCKET, sends nothing.
type Notifier struct {
	addr     *net.UnixAddr // nil: not under a notify-aware service manager
	watchdog time.Duration // WATCHDOG_USEC as a duration; 0 when not for us
}

// FromEnv builds a Notifier from the process environment.
func FromEnv() (*Notifier, error) { return New(os.Getenv) }

// New builds a Notifier from getenv (os.Getenv, or a map lookup in tests).
// An unusable NOTIFY_SOCKET or WATCHDOG_USEC is an error; the returned
// Notifier is usable all the same (with that part off), so a caller may log
// the error and go on.
func New(getenv func(string) string) (*Notifier, error) {
	n := &Notifier{}
	var errs []error
	if sock := getenv("NOTIFY_SOCKET"); sock != "" {
		switch {
		case strings.HasPrefix(sock, "@"):
			// Abstract namespace: Go spells it with a leading '@' too.
			n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"}
		case strings.HasPrefix(sock, "/"):
			n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"}
		default:
			// systemd also supports vsock: addresses (VMs); a Pi never needs them.
			errs = append(errs, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q: want an absolute path or @abstract name", sock))
		}
	}
	if us := getenv("WATCHDOG_USEC"); us != "" {
		v, err := strconv.ParseUint(us, 10, 63)
		switch {
		case err != nil || v == 0:
			errs = append(errs, fmt.Errorf("sdnotify: WATCHDOG_USEC %q: want a positive number of microseconds", us))
		case forThisProcess(getenv("WATCHDOG_PID")):
			n.watchdog = time.Duration(v) * time.Microsecond
		}
	}
	return n, errors.Join(errs...)
}

// forThisProcess reports whether a WATCHDOG_PID value addresses this
// process: unset means yes (systemd sets it, but sd_watchdog_enabled(3)
// accepts its absence), a different pid means the variable was inherited
// from a parent and is not ours.
func forThisProcess(pid string) bool {
	if pid == "" {
		return true
	}
	p, err := strconv.Atoi(pid)
	return err == nil && p == os.Getpid()
}

// Enabled reports whether the Notifier sends anything at all.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// WatchdogInterval is how often to call Watchdog: half of WATCHDOG_USEC,
// as sd_watchdog_enabled(3) advises, so one late ping is not fatal. It is
// 0 when the service has no watchdog (or no NOTIFY_SOCKET): then do not
// start the pinging at all.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog / 2
}

// Ready tells systemd that start-up is complete (READY=1).
func (n *Notifier) Ready() error { return n.send("READY=1") }

// Stopping tells systemd that shutdown has begun (STOPPING=1).
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// Reloading tells systemd that a configuration reload has begun
// (RELOADING=1); send Ready when it is done. Only needed with
// Type=notify-reload units; harmless otherwise.
func (n *Notifier) Reloading() error { return n.send("RELOADING=1") }

// Status sets the one-line status systemctl status shows (STATUS=…).
// Newlines would end the field early, so they become spaces.
func (n *Notifier) Status(s string) error {
	return n.send("STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

// Watchdog tells systemd that the service is alive (WATCHDOG=1). Call it
// every WatchdogInterval from the code path that proves the service works
// (see the package doc), not from an independent timer.
func (n *Notifier) Watchdog() error { return n.send("WATCHDOG=1") }

// send writes one datagram to the notify socket. A fresh socket per call keeps the Notifier free of state to close and of stale
// connections after systemd re-executes itself.
func (n *Notifier) send(state string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify %s: %w", n.addr.Name, err)
	}
	return nil
}
