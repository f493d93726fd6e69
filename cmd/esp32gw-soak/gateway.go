package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/esp32gw/esp32gw/internal/gwproc"
)

// gatewayProc is the gateway binary running as a child process; its whole
// log is kept in a file so the end check can scan it for panics and races.
type gatewayProc struct {
	cmd     *exec.Cmd
	addr    string
	token   string
	logPath string
	logFile *os.File
	done    chan struct{}
	err     error
}

func (p *gatewayProc) pid() int { return p.cmd.Process.Pid }

// gatewayConfig is the generated config: loopback, token auth, the
// tool's ws-listen boards, one sim board, MQTT only with a broker.
func gatewayConfig(addr, token, broker string, boards []string, boardToken string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by esp32gw-soak\ngateway_id: soak\nstate_dir: state\nhttp:\n  listen: %q\n  auth: token\n  token: %q\n", addr, token)
	if broker != "" {
		fmt.Fprintf(&b, "mqtt:\n  enabled: true\n  broker: %q\n", broker)
	} else {
		b.WriteString("mqtt:\n  enabled: false\n")
	}
	b.WriteString("devices:\n")
	for _, id := range boards {
		fmt.Fprintf(&b, "  - id: %s\n    transport: ws-listen\n    token: %q\n    commands: [toggle]\n    command_format: text\n", id, boardToken)
	}
	b.WriteString("  - id: sim1\n    transport: sim\n    sim: {board: tutorial, interval: 1s}\n")
	return b.String()
}

func startGateway(ctx context.Context, bin, dir, cfg string, addr, token string) (*gatewayProc, error) {
	p := &gatewayProc{addr: addr, token: token, logPath: filepath.Join(dir, "gateway.log")}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	f, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.logFile = f
	p.cmd = exec.Command(bin, "-config", cfgPath, "-log-level", "warn")
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = gwproc.ChildAttrs()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.done = make(chan struct{})
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("gateway exited before serving: %v\n%s", p.err, p.logTail())
		case <-ctx.Done():
			p.stop()
			return nil, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("gateway did not answer /healthz within 30s\n%s", p.logTail())
		}
	}
}

func (p *gatewayProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *gatewayProc) hup() error { return p.cmd.Process.Signal(syscall.SIGHUP) }

// stop sends SIGINT, waits 6 s, then kills.
func (p *gatewayProc) stop() error {
	defer p.logFile.Close()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(6 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("gateway did not exit within 6s of SIGINT")
	}
	if p.err != nil {
		return fmt.Errorf("gateway exit: %v", p.err)
	}
	return nil
}

func (p *gatewayProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// scanLog counts lines holding "panic" or "DATA RACE".
func (p *gatewayProc) scanLog() (panics, races int, first string) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0, 0, ""
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if strings.Contains(strings.ToLower(line), "panic") {
			panics++
			if first == "" {
				first = strings.TrimSpace(line)
			}
		}
		if strings.Contains(line, "DATA RACE") {
			races++
			if first == "" {
				first = strings.TrimSpace(line)
			}
		}
		if err == io.EOF || err != nil {
			return
		}
	}
}

// Resources is one reading of the gateway's resources.
type Resources struct {
	Goroutines int64 `json:"goroutines"`      // from /metrics go_goroutines; -1 when absent
	Threads    int64 `json:"threads"`         // /proc/PID/status Threads
	FDs        int64 `json:"fds"`             // entries in /proc/PID/fd
	RSSKB      int64 `json:"rss_kb"`          // /proc/PID/status VmRSS
	HeapLive   int64 `json:"heap_live_bytes"` // /metrics go_heap_live_bytes; -1 when absent
}

func (p *gatewayProc) resources() (Resources, error) {
	r := Resources{Goroutines: -1, HeapLive: -1}
	pid := p.pid()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return r, err
	}
	r.FDs = int64(len(ents))
	st, err := gwproc.ReadStatus(pid)
	if err != nil {
		return r, err
	}
	r.RSSKB, r.Threads = st.RSSKB, st.Threads
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return r, fmt.Errorf("/metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			r.Goroutines = n
		case "go_heap_live_bytes":
			r.HeapLive = n
		}
	}
	return r, nil
}
