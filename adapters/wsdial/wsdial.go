// Package wsdial keeps a WebSocket link to a board's own server: the gateway
// dials ws://BOARD/ws, so an unmodified ESPAsyncWebServer tutorial sketch
// works as it is. The link itself (keepalive, limits, commands) is
// adapters/internal/boardlink; this package dials, and redials with jittered
// exponential backoff for as long as its context lives.
//
// Run owns every goroutine it starts (the link's reader) and returns only
// after they have exited; cancel its context to stop it.
package wsdial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/adapters/internal/boardlink"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/backoff"
)

// The core starts and stops a Dialer through gateway.Transport.
var _ gateway.Transport = (*Dialer)(nil)

// Reconnect policy (DESIGN.md: first retry within 1 s, jittered exponential
// backoff, cap 30 s, never gives up).
const (
	// FirstDialJitter spreads the first dials after a gateway start over this
	// long, so a gateway with many boards does not hit them all at once.
	FirstDialJitter = 500 * time.Millisecond
	// BackoffBase is the first retry delay's upper bound; each retry waits a
	// random time in [d/2, d], d doubling from BackoffBase up to BackoffCap.
	// The first retry thus comes 0.3–0.6 s after the loss is seen, which
	// leaves the contract's 1 s room for detecting the loss and for a busy
	// machine's scheduling.
	BackoffBase = 600 * time.Millisecond
	// BackoffCap bounds every retry delay.
	BackoffCap = 30 * time.Second
	// HandshakeTimeout bounds the TCP connect plus the HTTP upgrade; a board
	// on the LAN answers in milliseconds.
	HandshakeTimeout = 5 * time.Second
)

// Dialer keeps one board link up until its context ends.
type Dialer struct {
	cfg gateway.DeviceConfig
	log *slog.Logger

	// Timing, defaulting to the constants above; tests shorten them.
	firstJitter time.Duration
	retry       backoff.Policy
	link        boardlink.Options
	dialer      websocket.Dialer
}

// New returns a Dialer for a ws-dial device.
func New(cfg gateway.DeviceConfig, log *slog.Logger) *Dialer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.CommandFormat == "" {
		cfg.CommandFormat = gateway.FormatText
	}
	return &Dialer{
		cfg:         cfg,
		log:         log.With("device", cfg.ID, "transport", gateway.TransportWSDial, "addr", cfg.URL),
		firstJitter: FirstDialJitter,
		retry:       backoff.Policy{Base: BackoffBase, Cap: BackoffCap},
		link: boardlink.Options{
			Device:    cfg.ID,
			Format:    cfg.CommandFormat,
			Transport: gateway.TransportWSDial,
			Addr:      cfg.URL,
			Log:       log,
		},
		dialer: websocket.Dialer{
			Proxy:            nil, // boards are on the LAN: never through an HTTP proxy from the environment
			HandshakeTimeout: HandshakeTimeout,
			ReadBufferSize:   4096,
			WriteBufferSize:  1024, // commands are small
		},
	}
}

// Run implements gateway.Transport: dial, serve the link, redial, until ctx
// ends. It returns nil on ctx's end, or an error if the hub refuses the
// device (an unknown id is a wiring bug, not something a retry fixes).
func (d *Dialer) Run(ctx context.Context, s gateway.Sink) error {
	if !sleep(ctx, time.Duration(rand.Int64N(int64(d.firstJitter)+1))) {
		return nil
	}
	fails := 0       // consecutive failed dials since the last link: the backoff exponent
	warned := false  // a dial failure was logged since the last state change
	lastReason := "" // why the previous link ended, for the "reconnected" log
	everUp := false
	for {
		conn, resp, err := d.dialer.DialContext(ctx, d.cfg.URL, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = dialError(d.cfg.URL, resp, err)
			s.SetOfflineReason(d.cfg.ID, err.Error())
			if !warned {
				d.log.Warn("cannot reach board, retrying with backoff", "err", err)
				warned = true
			} else {
				d.log.Debug("dial failed", "err", err)
			}
		} else {
			up, reason, err := d.serve(ctx, s, conn, everUp, lastReason)
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			everUp, warned, lastReason = true, false, reason
			d.log.Warn("board link lost, reconnecting", "reason", reason, "up_for", up.Round(time.Millisecond))
			// Every link loss is retried within the contract's 1 s, however
			// short the link was; only failed dials back off.
			fails = 0
		}
		delay := d.retry.Delay(fails)
		fails++
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// serve attaches and runs one link; it returns how long the link was up and
// why it ended.
func (d *Dialer) serve(ctx context.Context, s gateway.Sink, conn *websocket.Conn, everUp bool, lastReason string) (time.Duration, string, error) {
	link, err := boardlink.Attach(s, conn, d.link)
	if err != nil {
		conn.Close()
		if errors.Is(err, gateway.ErrShutdown) {
			return 0, "", nil
		}
		return 0, "", fmt.Errorf("wsdial %s: %w", d.cfg.URL, err)
	}
	if everUp {
		d.log.Info("board reconnected", "after", lastReason)
	} else {
		d.log.Info("board connected")
	}
	start := time.Now()
	_ = link.Run(ctx)
	return time.Since(start), link.Reason(), nil
}

func dialError(url string, resp *http.Response, err error) error {
	if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
		return fmt.Errorf("wsdial %s: upgrade refused: HTTP %s (is the path right, e.g. /ws?)", url, resp.Status)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("wsdial %s: no answer within %s: %w", url, HandshakeTimeout, err)
	}
	return fmt.Errorf("wsdial %s: %w", url, err)
}

// sleep waits for d or ctx's end; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
