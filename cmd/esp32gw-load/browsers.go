package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Browser timings and bounds.
const (
	browserDialTimeout = 10 * time.Second
	// browserMaxReconnects bounds how often one browser reconnects in a
	// run (after a 1013 "too slow" close, for instance).
	browserMaxReconnects = 50
	browserRedialWait    = 100 * time.Millisecond
	browserReadLimit     = 4 << 20 // a snapshot of many boards can be large
	// browsersPerSourceIP spreads the browsers over source addresses
	// 127.0.0.2, 127.0.0.3, … so a per-address connection limit on the
	// server (DESIGN.md: connections_per_ip) does not refuse them.
	browsersPerSourceIP = 50
)

// browser is one /ws client. Its run loop is the only reader; the command
// prober is the only writer (pongs go through gorilla's concurrent-safe
// control writes). It keeps, under mu, which readings it has seen and the
// open windows' figures, which the controller harvests.
type browser struct {
	idx     int
	url     string      // ws://…/ws?token=… (without since)
	header  http.Header // Authorization when the token goes in a header
	ctl     *control
	boards  []*board
	devices map[string]int // device id → index in boards

	mu   sync.Mutex
	seen [][]uint64                 // per board: bit SEQ set once received
	wins [maxWindows]*browserWindow // per window: nil until the first receipt, and after harvest
	last int64                      // the last event seq from the server, for ?since=

	frames     atomic.Uint64
	reconnects atomic.Uint64
	closes1013 atomic.Uint64
	first      chan struct{} // closed on the first frame
	firstOnce  sync.Once

	// For the command prober (browser 0 only; nil otherwise): ledStatus
	// events and ack/error replies, each dropped when the prober is not
	// listening.
	leds    chan ledEvent
	replies chan reply

	wmu sync.Mutex
	ws  *websocket.Conn // the current connection, for send

	err error // why run returned; set by browserSet before its done closes
}

// browserWindow is one browser's figures for one window.
type browserWindow struct {
	delivered uint64 // distinct readings received
	dups      uint64
	lat       hist
}

type ledEvent struct {
	board int
	at    int64 // ns on the control clock
}

type reply struct {
	id, typ, err string
}

func newBrowser(idx int, wsURL string, header http.Header, ctl *control, boards []*board, devices map[string]int) *browser {
	return &browser{
		idx: idx, url: wsURL, header: header, ctl: ctl, boards: boards, devices: devices,
		seen:  make([][]uint64, len(boards)),
		last:  -1,
		first: make(chan struct{}),
	}
}

// run connects and reads until ctx ends, reconnecting (with ?since= the
// last seq) after the server closes it, at most browserMaxReconnects times.
func (b *browser) run(ctx context.Context) error {
	ip := net.IPv4(127, 0, 0, byte(2+b.idx/browsersPerSourceIP%250))
	d := websocket.Dialer{
		HandshakeTimeout: browserDialTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  1024,
		NetDialContext: (&net.Dialer{
			Timeout:   browserDialTimeout,
			LocalAddr: &net.TCPAddr{IP: ip},
		}).DialContext,
	}
	var err error
	for attempt := 0; attempt <= browserMaxReconnects && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			b.reconnects.Add(1)
			t := time.NewTimer(browserRedialWait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		u := b.url
		b.mu.Lock()
		if b.last >= 0 {
			u = withQuery(u, "since", strconv.FormatInt(b.last, 10))
		}
		b.mu.Unlock()
		var ws *websocket.Conn
		var resp *http.Response
		ws, resp, err = d.DialContext(ctx, u, b.header)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			if resp != nil {
				err = fmt.Errorf("browser %d: dial %s: HTTP %s", b.idx, redact(b.url), resp.Status)
			} else {
				err = fmt.Errorf("browser %d: dial: %w", b.idx, err)
			}
			continue
		}
		err = b.read(ctx, ws)
		if ctx.Err() != nil {
			return nil
		}
	}
	return err
}

// read serves one connection until it ends.
func (b *browser) read(ctx context.Context, ws *websocket.Conn) error {
	b.wmu.Lock()
	b.ws = ws
	b.wmu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		ws.Close()
	})
	defer func() {
		stop()
		b.wmu.Lock()
		b.ws = nil
		b.wmu.Unlock()
		ws.Close()
	}()
	ws.SetReadLimit(browserReadLimit)
	var buf bytes.Buffer
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.CloseTryAgainLater {
				b.closes1013.Add(1)
			}
			return fmt.Errorf("browser %d: read: %w", b.idx, err)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return fmt.Errorf("browser %d: read: %w", b.idx, err)
		}
		b.receive(buf.Bytes(), b.ctl.now())
	}
}

// receive handles one frame that arrived at ns (control clock).
func (b *browser) receive(f []byte, ns int64) {
	b.frames.Add(1)
	b.firstOnce.Do(func() { close(b.first) })
	if !bytes.HasPrefix(f, []byte(`{"type":"event"`)) {
		b.receiveOther(f)
		return
	}
	dev, label, value, seq := field(f, `"device":`), field(f, `"label":`), field(f, `"value":`), field(f, `"seq":`)
	if len(dev) < 2 {
		return
	}
	bi, ok := b.devices[string(dev[1:len(dev)-1])]
	if !ok {
		return
	}
	last, seqErr := strconv.ParseInt(string(seq), 10, 64)
	isCount := string(label) == `"count"`
	if !isCount {
		if seqErr == nil {
			b.mu.Lock()
			b.last = last
			b.mu.Unlock()
		}
		if string(label) == `"ledStatus"` && b.leds != nil {
			select {
			case b.leds <- ledEvent{board: bi, at: ns}:
			default:
			}
		}
		return
	}
	n, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil || n < 0 || n >= maxSeq {
		n = -1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if seqErr == nil {
		b.last = last
	}
	if n < 0 {
		return
	}
	win, sent := unstamp(b.boards[bi].log.get(n))
	s := b.seen[bi]
	w, bit := int(n/64), uint64(1)<<(n%64)
	if w >= len(s) {
		grown := make([]uint64, max(w+1, 2*len(s)))
		copy(grown, s)
		s, b.seen[bi] = grown, grown
	}
	dup := s[w]&bit != 0
	s[w] |= bit
	if win < 0 {
		return
	}
	bw := b.wins[win]
	if bw == nil {
		bw = new(browserWindow)
		b.wins[win] = bw
	}
	if dup {
		bw.dups++
		return
	}
	bw.delivered++
	bw.lat.record(time.Duration(ns - sent))
}

// receiveOther handles a frame that is not an event: the snapshot (its seq
// is where ?since= resumes), acks and errors.
func (b *browser) receiveOther(f []byte) {
	var m struct {
		Type  string          `json:"type"`
		ID    json.RawMessage `json:"id"`
		Error string          `json:"error"`
		Seq   *int64          `json:"seq"`
	}
	if json.Unmarshal(f, &m) != nil {
		return
	}
	switch m.Type {
	case "snapshot":
		if m.Seq != nil {
			b.mu.Lock()
			b.last = *m.Seq
			b.mu.Unlock()
		}
	case "ack", "error":
		if b.replies != nil {
			select {
			case b.replies <- reply{id: unquote(m.ID), typ: m.Type, err: m.Error}:
			default:
			}
		}
	}
}

// harvest takes (and forgets) this browser's figures for window w.
func (b *browser) harvest(w int) *browserWindow {
	b.mu.Lock()
	defer b.mu.Unlock()
	bw := b.wins[w]
	b.wins[w] = nil
	return bw
}

// delivered is how many distinct readings of window w arrived so far.
func (b *browser) delivered(w int) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bw := b.wins[w]; bw != nil {
		return bw.delivered
	}
	return 0
}

// send writes one text frame on the current connection.
func (b *browser) send(msg []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.ws == nil {
		return errors.New("not connected")
	}
	b.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return b.ws.WriteMessage(websocket.TextMessage, msg)
}

// field returns the JSON value after key in an object with flat fields: a
// quoted string (with its quotes) or a bare token up to ',' or '}'. Events
// are small flat objects written by the server, so a scan is enough and
// keeps the tool's CPU for the measurement.
func field(f []byte, key string) []byte {
	i := bytes.Index(f, []byte(key))
	if i < 0 {
		return nil
	}
	v := f[i+len(key):]
	if len(v) > 0 && v[0] == '"' {
		for j := 1; j < len(v); j++ {
			switch v[j] {
			case '\\':
				j++
			case '"':
				return v[:j+1]
			}
		}
		return nil
	}
	if j := bytes.IndexAny(v, ",}"); j >= 0 {
		return v[:j]
	}
	return nil
}

// unquote turns a JSON string token into its text (ids and labels here are
// plain ASCII); anything else is returned as is.
func unquote(v []byte) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// redact hides the token in a URL for error messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(url)"
	}
	q := u.Query()
	if q.Has("token") {
		q.Set("token", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// withQuery adds key=value to a URL's query.
func withQuery(s, key, value string) string {
	sep := "?"
	if strings.Contains(s, "?") {
		sep = "&"
	}
	return s + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}
