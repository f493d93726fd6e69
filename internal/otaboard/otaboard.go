// Package otaboard emulates an ESP32 board that takes firmware updates, as
// the contract describes them (DESIGN.md, "Updates"): it dials the gateway
// as a ws-listen board, reports $fw, $chip, $project and $mac, and on an
// ota frame downloads the URL (resuming with a Range request when the
// download breaks), checks size and SHA-256, reports progress in $ota,
// "reboots" (closes its link) and comes back reporting the version read
// from the image's app description. Failure modes: a bad hash (reported in
// $ota) and a new image that never comes back. Tests and the load tool use
// it.
//
// Start runs one goroutine per board; Close stops it and waits for it.
package otaboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
)

// Failure modes.
const (
	FailNone     = ""
	FailHash     = "hash"     // the download's SHA-256 does not match: $ota failed
	FailNoReturn = "noreturn" // takes the image, reboots, never comes back
	FailIgnore   = "ignore"   // receives ota frames and does nothing with them
)

// Config describes a board.
type Config struct {
	URL     string // ws://GW/device/ID
	Token   string
	FW      string
	Project string
	Chip    string
	MAC     string
	Fail    string
	// BytesPerSec slows the download (0: as fast as it goes).
	BytesPerSec int
	// LocalIP, when set, is the address the board's connections come from
	// (e.g. 127.0.0.2, to look like another board on loopback).
	LocalIP string
	Logf    func(format string, args ...any)
}

// Board is one emulated board.
type Board struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	fw      string
	frames  []json.RawMessage // every ota frame received
	applied []string          // versions applied
	last    error             // the last download or check error
	link    *websocket.Conn
	wmu     sync.Mutex     // one writer on the link
	updates sync.WaitGroup // update goroutines
	gone    bool           // FailNoReturn: rebooted into an image that never returns
}

// Start connects the board and keeps it connected until Close.
func Start(cfg Config) *Board {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Board{cfg: cfg, cancel: cancel, done: make(chan struct{}), fw: cfg.FW}
	if b.cfg.Logf == nil {
		b.cfg.Logf = func(string, ...any) {}
	}
	go func() {
		defer close(b.done)
		b.run(ctx)
	}()
	return b
}

// Close disconnects the board and waits for its goroutine.
func (b *Board) Close() {
	b.cancel()
	b.mu.Lock()
	if b.link != nil {
		b.link.Close()
	}
	b.mu.Unlock()
	<-b.done
	b.updates.Wait()
}

// FW is the version the board runs.
func (b *Board) FW() string { b.mu.Lock(); defer b.mu.Unlock(); return b.fw }

// Frames are the ota frames the board received.
func (b *Board) Frames() []json.RawMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]json.RawMessage(nil), b.frames...)
}

// Applied are the versions the board installed, in order.
func (b *Board) Applied() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.applied...)
}

// Err is the last download or check error.
func (b *Board) Err() error { b.mu.Lock(); defer b.mu.Unlock(); return b.last }

type frame struct {
	Type    string `json:"type"`
	Job     string `json:"job"`
	URL     string `json:"url"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Version string `json:"version"`
}

func (b *Board) dialer() *websocket.Dialer {
	d := *websocket.DefaultDialer
	if b.cfg.LocalIP != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(b.cfg.LocalIP)}}
		d.NetDialContext = nd.DialContext
	}
	return &d
}

func (b *Board) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if b.cfg.LocalIP != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(b.cfg.LocalIP)}}
		tr.DialContext = nd.DialContext
	}
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
}

// run is the board's life: connect, serve the link, and after an update
// reconnect on the new version; a broken link is redialled every 200 ms.
func (b *Board) run(ctx context.Context) {
	for ctx.Err() == nil {
		b.mu.Lock()
		gone := b.gone
		b.mu.Unlock()
		if gone {
			<-ctx.Done()
			return
		}
		h := http.Header{"Origin": {"file://"}, "Authorization": {"Bearer " + b.cfg.Token}}
		c, _, err := b.dialer().DialContext(ctx, b.cfg.URL, h)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		b.serve(ctx, c)
	}
}

// send writes one frame on the current link (dropped while there is none).
func (b *Board) send(v any) error {
	p, _ := json.Marshal(v)
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	c := b.link
	b.mu.Unlock()
	if c == nil {
		return errors.New("no link")
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.WriteMessage(websocket.TextMessage, p)
}

// serve runs one link until it breaks or an update reboots the board. An
// update goes on across links (the download does not need the link).
func (b *Board) serve(ctx context.Context, c *websocket.Conn) {
	b.mu.Lock()
	b.link = c
	fw := b.fw
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.link == c {
			b.link = nil
		}
		b.mu.Unlock()
		c.Close()
	}()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if b.send(map[string]any{"$fw": fw, "$project": b.cfg.Project, "$chip": b.cfg.Chip, "$mac": b.cfg.MAC}) != nil {
		return
	}
	for {
		_, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		var f frame
		if json.Unmarshal(p, &f) != nil || f.Type != "ota" {
			continue
		}
		b.mu.Lock()
		b.frames = append(b.frames, append(json.RawMessage(nil), p...))
		b.mu.Unlock()
		if b.cfg.Fail == FailIgnore {
			continue
		}
		b.updates.Go(func() {
			if b.update(ctx, f, b.send) {
				b.mu.Lock()
				if b.link != nil {
					b.link.Close() // reboot
				}
				b.mu.Unlock()
			}
		})
	}
}

// update downloads, checks and applies f; true: the board reboots.
func (b *Board) update(ctx context.Context, f frame, send func(any) error) bool {
	img, err := b.download(ctx, f, send)
	fail := func(err error) bool {
		b.mu.Lock()
		b.last = err
		b.mu.Unlock()
		b.cfg.Logf("board: update failed: %v", err)
		send(map[string]any{"$ota": map[string]any{"state": "failed", "error": err.Error(), "job": f.Job}})
		return false
	}
	if err != nil {
		return fail(err)
	}
	sum := sha256.Sum256(img)
	if b.cfg.Fail == FailHash {
		sum[0] ^= 0xff
	}
	if int64(len(img)) != f.Size {
		return fail(fmt.Errorf("size %d, the frame said %d", len(img), f.Size))
	}
	if hex.EncodeToString(sum[:]) != f.SHA256 {
		return fail(errors.New("sha256 mismatch"))
	}
	info, err := espimage.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		return fail(err)
	}
	send(map[string]any{"$ota": map[string]any{"state": "rebooting", "progress": 100, "job": f.Job}})
	b.mu.Lock()
	b.fw = info.Version
	b.applied = append(b.applied, info.Version)
	b.gone = b.cfg.Fail == FailNoReturn
	b.mu.Unlock()
	b.cfg.Logf("board: ota applied version=%s", info.Version)
	return true
}

// download fetches the image, resuming with Range after a broken
// response, reporting progress every 10 %.
func (b *Board) download(ctx context.Context, f frame, send func(any) error) ([]byte, error) {
	if f.Size <= 0 || f.Size > espimage.MaxSize {
		return nil, fmt.Errorf("size %d out of range", f.Size)
	}
	buf := make([]byte, 0, f.Size)
	client := b.httpClient()
	reported := -1
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for int64(len(buf)) < f.Size {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("download: %v", last)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
		req.Header.Set("x-ESP32-STA-MAC", b.cfg.MAC)
		if len(buf) > 0 {
			req.Header.Set("Range", "bytes="+strconv.Itoa(len(buf))+"-")
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			buf = buf[:0]
		case resp.StatusCode == http.StatusPartialContent && len(buf) > 0:
		default:
			resp.Body.Close()
			return nil, fmt.Errorf("download: HTTP %d", resp.StatusCode)
		}
		if resp.StatusCode == http.StatusOK && resp.ContentLength != f.Size {
			resp.Body.Close()
			return nil, fmt.Errorf("download: Content-Length %d, the frame said %d", resp.ContentLength, f.Size)
		}
		chunk := make([]byte, 16<<10)
		for {
			n, err := resp.Body.Read(chunk)
			if int64(len(buf)+n) > f.Size {
				resp.Body.Close()
				return nil, errors.New("download: longer than the frame's size")
			}
			buf = append(buf, chunk[:n]...)
			if p := int(int64(len(buf)) * 10 / f.Size); p > reported {
				reported = p
				send(map[string]any{"$ota": map[string]any{"state": "downloading", "progress": p * 10, "job": f.Job}})
			}
			if b.cfg.BytesPerSec > 0 && n > 0 {
				time.Sleep(time.Duration(n) * time.Second / time.Duration(b.cfg.BytesPerSec))
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					last = err
				}
				break
			}
		}
		resp.Body.Close()
	}
	return buf, nil
}
