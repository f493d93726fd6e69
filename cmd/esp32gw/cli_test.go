package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunSubcommands(t *testing.T) {
	good := writeConfig(t, `
devices:
  - id: demo
    transport: sim
    commands: [toggle]
  - id: kitchen
    transport: ws-dial
    url: "ws://192.168.1.50/ws"
`)
	bad := writeConfig(t, `
http:
  lisen: ":8080"
devices:
  - id: demo
    transport: sim
  - id: demo
    transport: ws-dial
    url: "http://192.168.1.50/ws"
  - id: garage
    transport: ws-listen
  - id: bench
    transport: serial
    sim: {interval: soon}
`)
	tests := []struct {
		name       string
		args       []string
		wantErr    []string // fragments the error must hold; nil: success
		wantStdout string
		wantStderr string
	}{
		{"check good", []string{"check", "-config", good}, nil, good + ": OK (2 devices)\n", ""},
		{"check bad lists every problem", []string{"check", "-config", bad}, []string{
			bad + `:2: unknown key "lisen" in http (allowed: allowed_hosts, allowed_origins, auth, listen, tls, token)`,
			bad + `:6: devices[1].id: duplicate id "demo" (also devices[0])`,
			bad + `:8: devices[1].url: must be a ws:// or wss:// URL with a host, got "http://192.168.1.50/ws"`,
			bad + `:9: devices[2].token: ws-listen needs a token the board presents`,
			bad + `:11: devices[3].port: serial needs a port (e.g. /dev/ttyUSB0) or match: {vid, pid, serial}`,
			bad + `:13: devices[3].sim.interval: not a duration: want e.g. 500ms, 2s or 1m, got "soon"`,
		}, "", ""},
		{"check missing file", []string{"check", "-config", filepath.Join(t.TempDir(), "nope.yaml")}, []string{"read config", "nope.yaml"}, "", ""},
		{"version", []string{"version"}, nil, "esp32gw ", ""},
		{"unknown subcommand", []string{"frobnicate"}, []string{`unknown command "frobnicate"`, "check", "version"}, "", ""},
		{"flags before the command", []string{"-config", good, "check"}, nil, good + ": OK (2 devices)\n", ""},
		{"stray argument", []string{"check", "-config", good, "extra"}, []string{`unexpected argument "extra"`}, "", ""},
		{"unknown flag", []string{"check", "-colour"}, []string{"flag provided but not defined: -colour"}, "", "usage:"},
		{"help", []string{"-h"}, nil, "", "esp32gw check [-config FILE]"},
		{"bad log level", []string{"-config", good, "-log-level", "loud"}, []string{"-log-level"}, "", ""},
		{"run with a bad config fails before serving", []string{"-config", bad}, []string{"devices[2].token"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, noEnv, &stdout, &stderr)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("run(%q): %v", tt.args, err)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("run(%q) succeeded; stdout %q", tt.args, stdout.String())
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				if tt.name == "check bad lists every problem" {
					if n := len(strings.Split(err.Error(), "\n")); n != len(tt.wantErr) {
						t.Errorf("%d error lines, want %d:\n%v", n, len(tt.wantErr), err)
					}
				}
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) || (tt.wantStdout == "" && stdout.Len() > 0) {
				t.Errorf("stdout %q, want prefix %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestVersionString(t *testing.T) {
	v := versionString()
	if v == "" || strings.ContainsAny(v, "\n") {
		t.Errorf("versionString() = %q", v)
	}
	old := version
	version = "v1.2.3"
	defer func() { version = old }()
	if v := versionString(); !strings.HasPrefix(v, "v1.2.3") {
		t.Errorf("with -X main.version=v1.2.3: %q", v)
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"version"}, noEnv, &stdout, &bytes.Buffer{}); err != nil || !strings.HasPrefix(stdout.String(), "esp32gw v1.2.3") {
		t.Errorf("version: %q %v", stdout.String(), err)
	}
}
