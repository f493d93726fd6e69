package contracttest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/internal/testgw"
)

// run runs the binary with args in dir and returns exit code and output.
func run(t *testing.T, dir string, within time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, testgw.Binary(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("esp32gw %v did not exit within %v:\n%s", args, within, out)
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("esp32gw %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, string(out)
}

const goodConfig = `gateway_id: gw1
state_dir: data
http:
  listen: "127.0.0.1:0"
  auth: token
devices:
  - id: demo
    name: "Demo board"
    transport: sim
    sim: {board: tutorial, interval: 50ms}
    commands: [toggle]
    command_format: text
  - id: kitchen
    transport: ws-dial
    url: "ws://127.0.0.1:9/ws"
  - id: garage
    transport: ws-listen
    token: "long-random"
  - id: bench
    transport: serial
    port: "/dev/ttyUSB0"
    baud: 115200
    reset_on_open: false
  - id: bench2
    transport: serial
    match: {vid: "10c4", pid: "ea60"}
`

func TestCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("check good config exits 0", func(t *testing.T) {
		p := write("good.yaml", goodConfig)
		code, out := run(t, dir, 20*time.Second, "check", "-config", p)
		if code != 0 {
			t.Fatalf("check on a good config: exit %d, want 0:\n%s", code, out)
		}
	})

	bad := []struct {
		name  string
		yaml  string
		field string // must appear in the message
		line  int    // the line the error is on
	}{
		{"unknown top-level key", "gateway_id: gw1\nhtpp:\n  listen: \"127.0.0.1:0\"\ndevices:\n  - id: a\n    transport: sim\n", "htpp", 2},
		{"unknown device key", "devices:\n  - id: a\n    transport: sim\n    colour: red\n", "colour", 4},
		{"duplicate ids", "devices:\n  - id: a\n    transport: sim\n  - id: a\n    transport: sim\n", "id", 4},
		{"bad URL", "devices:\n  - id: k\n    transport: ws-dial\n    url: \"http//nope\"\n", "url", 4},
		{"serial without port or match", "devices:\n  - id: s\n    transport: serial\n    baud: 115200\n", "port", 2},
		{"ws-listen without token", "devices:\n  - id: l\n    transport: ws-listen\n", "token", 2},
	}
	for _, tc := range bad {
		t.Run("check fails: "+tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "_")+".yaml", tc.yaml)
			code, out := run(t, dir, 20*time.Second, "check", "-config", p)
			if code == 0 {
				t.Fatalf("check exit 0 on a bad config (%s):\n%s", tc.name, out)
			}
			if !strings.Contains(out, tc.field) {
				t.Errorf("check's message does not name the field %q:\n%s", tc.field, out)
			}
			// The line: "file:LINE", "line LINE" or ":LINE:".
			lineRe := regexp.MustCompile(`(?i)(:` + itoa(tc.line) + `\b|line ` + itoa(tc.line) + `\b)`)
			if !lineRe.MatchString(out) {
				t.Errorf("check's message does not give line %d:\n%s", tc.line, out)
			}
		})
	}

	t.Run("unknown key message says what is allowed", func(t *testing.T) {
		p := write("allowed.yaml", "gateway_id: gw1\nhtpp: {}\ndevices: []\n")
		_, out := run(t, dir, 20*time.Second, "check", "-config", p)
		if !strings.Contains(out, "http") || !strings.Contains(out, "devices") {
			t.Errorf("unknown-key message does not list the allowed keys:\n%s", out)
		}
	})

	t.Run("startup with a bad config fails clearly", func(t *testing.T) {
		p := write("badrun.yaml", "gateway_id: gw1\nstate_dir: data\nhttp:\n  listen: \"127.0.0.1:0\"\ndevices:\n  - id: l\n    transport: ws-listen\n")
		code, out := run(t, dir, 20*time.Second, "-config", p)
		if code == 0 {
			t.Fatalf("startup with a bad config: exit 0:\n%s", out)
		}
		if !strings.Contains(out, "token") {
			t.Errorf("startup failure does not name the field token:\n%s", out)
		}
	})

	t.Run("version prints something", func(t *testing.T) {
		code, out := run(t, dir, 20*time.Second, "version")
		if code != 0 || strings.TrimSpace(out) == "" {
			t.Fatalf("version: exit %d, output %q", code, out)
		}
	})

	t.Run("ports lists and exits 0", func(t *testing.T) {
		code, out := run(t, dir, 20*time.Second, "ports")
		if code != 0 {
			t.Fatalf("ports: exit %d:\n%s", code, out)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }
