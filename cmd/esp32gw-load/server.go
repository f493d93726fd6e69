package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/internal/gwproc"
)

// Server process timings.
const (
	serverStartWait = 30 * time.Second // until /healthz answers
	serverStopWait  = 6 * time.Second  // SIGINT, then SIGKILL (the contract promises exit within 5 s)
	logTail         = 32 << 10         // bytes of the server's log kept for error messages
)

// serverProc is the measured server (the gateway or the reference) running
// as a child process. stop ends it; nothing else outlives the run.
type serverProc struct {
	kind  string // gateway | reference
	cmd   *exec.Cmd
	addr  string // 127.0.0.1:PORT
	token string
	log   *tail
	done  chan struct{} // closed when the process has exited
	err   error         // its exit error, set before done closes
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// wsURL is the /ws address browsers dial, with the token in the query when
// inQuery (otherwise the caller sends a Bearer header).
func (p *serverProc) wsURL(inQuery bool) string {
	u := "ws://" + p.addr + "/ws"
	if inQuery {
		u = withQuery(u, "token", p.token)
	}
	return u
}

// boardSpec describes a board to the server: a URL to dial (ws-dial), or
// the token it presents at /device/ID (ws-listen).
type boardSpec struct {
	id, url, token string
}

// gatewayConfig is the config.yaml the gateway runs on: loopback only, the
// token set, state in dir, one device per board that accepts toggle.
func gatewayConfig(addr, token string, boards []boardSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by esp32gw-load\ngateway_id: load\nstate_dir: state\nhttp:\n  listen: %q\n  auth: token\n  token: %q\nmqtt:\n  enabled: false\ndevices:\n", addr, token)
	for _, d := range boards {
		fmt.Fprintf(&b, "  - id: %s\n    commands: [toggle]\n    command_format: text\n", d.id)
		if d.url != "" {
			fmt.Fprintf(&b, "    transport: ws-dial\n    url: %q\n", d.url)
		} else {
			fmt.Fprintf(&b, "    transport: ws-listen\n    token: %q\n", d.token)
		}
	}
	return b.String()
}

// startGateway writes a config into dir and runs the gateway binary on it.
func startGateway(ctx context.Context, bin, dir, addr string, boards []boardSpec) (*serverProc, error) {
	p := &serverProc{kind: "gateway", addr: addr, token: gwproc.RandomToken()}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(gatewayConfig(addr, p.token, boards)), 0o600); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	p.cmd = exec.Command(bin, "-config", cfg, "-log-level", "warn")
	p.cmd.Dir = dir
	return p, p.start(ctx)
}

// startReference runs this binary's hidden -serve-reference mode.
func startReference(ctx context.Context, addr string, boards []boardSpec) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	p := &serverProc{kind: "reference", addr: addr, token: gwproc.RandomToken()}
	spec := refSpec{Listen: addr, Token: p.token}
	for _, b := range boards {
		spec.Boards = append(spec.Boards, refBoard{ID: b.id, URL: b.url, Token: b.token})
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	p.cmd = exec.Command(exe, serveReferenceFlag, string(js))
	return p, p.start(ctx)
}

// start runs the process and waits until /healthz answers.
func (p *serverProc) start(ctx context.Context) error {
	p.log = &tail{max: logTail}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = gwproc.ChildAttrs()
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("%s: start %s: %w", p.kind, p.cmd.Path, err)
	}
	p.done = make(chan struct{})
	go func() { // owned by stop, which waits for done
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(serverStartWait)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		resp, err := client.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before serving: %v\n%s", p.kind, p.err, p.log)
		case <-ctx.Done():
			p.stop()
			return fmt.Errorf("%s: waiting for /healthz: %w", p.kind, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("%s did not answer /healthz within %s:\n%s", p.kind, serverStartWait, p.log)
		}
	}
}

// stop sends SIGINT, waits, kills after serverStopWait, and returns the
// exit error (nil for exit 0) and how long the exit took.
func (p *serverProc) stop() (time.Duration, error) {
	start := time.Now()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(serverStopWait):
		p.cmd.Process.Kill()
		<-p.done
		return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGINT", p.kind, serverStopWait)
	}
	if p.err != nil {
		return time.Since(start), fmt.Errorf("%s: %v\n%s", p.kind, p.err, p.log)
	}
	return time.Since(start), nil
}

// tail keeps the last max bytes written to it; safe for concurrent use.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
