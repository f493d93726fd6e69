package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(strings.TrimPrefix(yaml, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigGood(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		devices int
		check   func(t *testing.T, c gateway.Config)
	}{
		{"empty file", "", 0, func(t *testing.T, c gateway.Config) {
			if c.HTTP.Listen != ":8080" || c.HTTP.Auth != "token" || c.StateDir != "data" || c.MQTT.TopicPrefix != "esp32gw" || c.MQTT.QoS != 1 {
				t.Errorf("defaults not kept: %+v", c)
			}
		}},
		{"comments only", "# nothing yet\n", 0, nil},
		{"every transport", `
gateway_id: pi-garage
http:
  listen: "127.0.0.1:9090"
  auth: none
mqtt:
  enabled: true
  broker: "ssl://broker.local:8883"
  homeassistant: {enabled: true}
devices:
  - id: demo
    transport: sim
    sim: {board: climate, interval: 250ms}
  - id: kitchen
    transport: ws-dial
    url: "wss://192.168.1.50/ws"
    commands: [toggle, "1"]
    command_format: json
  - id: garage
    transport: ws-listen
    token: "long-random"
  - id: bench
    transport: serial
    match: {vid: "10c4", pid: "EA60"}
    silence_timeout: 30s
`, 4, func(t *testing.T, c gateway.Config) {
			if c.HTTP.Listen != "127.0.0.1:9090" || c.MQTT.QoS != 1 || c.MQTT.ClientID != "esp32gw" || c.MQTT.HomeAssistant.Prefix != "homeassistant" {
				t.Errorf("nested defaults lost: %+v", c)
			}
			d := c.Devices
			if time.Duration(d[0].Sim.Interval) != 250*time.Millisecond || d[0].Name != "demo" || d[0].CommandFormat != "text" {
				t.Errorf("sim device: %+v", d[0])
			}
			if d[1].CommandFormat != "json" || len(d[1].Commands) != 2 {
				t.Errorf("ws-dial device: %+v", d[1])
			}
			if d[3].Baud != 115200 || time.Duration(d[3].SilenceTimeout) != 30*time.Second || d[3].Match.PID != "EA60" {
				t.Errorf("serial device: %+v", d[3])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.yaml))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(c.Devices) != tt.devices {
				t.Errorf("%d devices, want %d", len(c.Devices), tt.devices)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// TestDefaultConfigFile keeps the shipped config.yaml loadable: it is what
// a fresh checkout runs.
func TestDefaultConfigFile(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "config.yaml"))
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	boards := map[string]bool{}
	for _, d := range c.Devices {
		if d.Transport == gateway.TransportSim {
			boards[d.Sim.Board] = true
		}
	}
	for _, b := range gateway.SimBoards {
		if !boards[b] {
			t.Errorf("config.yaml has no simulated %s board", b)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each a line of the error after "FILE", in order
	}{
		{"unknown top-level key", `
gateway: pi
`, []string{`:1: unknown key "gateway" in the top level (allowed: devices, enroll_token, gateway_id, history, http, limits, mdns, mqtt, state_dir)`}},
		{"unknown nested key", `
http:
  listen: ":8080"
  lisen: ":9090"
`, []string{`:3: unknown key "lisen" in http (allowed: allowed_hosts, allowed_origins, auth, listen, tls, token)`}},
		{"unknown device key", `
devices:
  - id: a
    transport: sim
  - id: b
    transport: sim
    colour: red
`, []string{`:6: unknown key "colour" in devices[1] (allowed: baud, command_format, commands, enrolled_as, id, match, name, port, reset_on_open, silence_timeout, sim, token, transport, url)`}},
		{"unknown key in a flow mapping", `
devices:
  - {id: a, transport: sim, sim: {board: tutorial, speed: 2}}
`, []string{`:2: unknown key "speed" in devices[0].sim (allowed: board, interval)`}},
		{"duplicate ids", `
devices:
  - id: a
    transport: sim
  - id: a
    transport: sim
`, []string{`:4: devices[1].id: duplicate id "a" (also devices[0])`}},
		{"bad ws url", `
devices:
  - id: kitchen
    transport: ws-dial
    url: "http://192.168.1.50/ws"
`, []string{`:4: devices[0].url: must be a ws:// or wss:// URL with a host, got "http://192.168.1.50/ws"`}},
		{"ws-dial without url", `
devices:
  - id: kitchen
    transport: ws-dial
`, []string{`:2: devices[0].url: ws-dial needs the board's WebSocket URL, e.g. ws://192.168.1.50/ws`}},
		{"bad broker url", `
mqtt:
  enabled: true
  broker: "localhost:1883"
`, []string{`:3: mqtt.broker: must be a URL like tcp://host:1883 (tcp, ssl, ws, wss), got "localhost:1883"`}},
		{"serial without port or match", `
devices:
  - id: bench
    transport: serial
    baud: 115200
`, []string{`:2: devices[0].port: serial needs a port (e.g. /dev/ttyUSB0) or match: {vid, pid, serial}`}},
		{"ws-listen without token", `
devices:
  - id: garage
    transport: ws-listen
`, []string{`:2: devices[0].token: ws-listen needs a token the board presents (Authorization: Bearer TOKEN)`}},
		{"bad duration", `
devices:
  - id: demo
    transport: sim
    sim:
      interval: fast
`, []string{`:5: devices[0].sim.interval: not a duration: want e.g. 500ms, 2s or 1m, got "fast"`}},
		{"wrong types", `
mqtt:
  qos: high
  retain: maybe
devices:
  - id: demo
    transport: sim
    commands: toggle
    name: [a, b]
`, []string{
			`:2: mqtt.qos: want a whole number, got "high"`,
			`:3: mqtt.retain: want true or false, got "maybe"`,
			`:7: devices[0].commands: want a list like [a, b], got "toggle"`,
			`:8: devices[0].name: want a single value`,
		}},
		{"devices not a list", `
devices:
  id: demo
`, []string{`:2: devices: want a list of devices (- id: …), got a mapping`}},
		{"every problem at once, in file order", `
http:
  auth: tokens
  lisen: ":1"
devices:
  - id: Demo
    transport: sim
    sim: {interval: soon}
  - id: bench
    transport: serial
  - id: garage
    transport: ws-listen
    baud: fast
`, []string{
			`:2: http.auth: must be token or none, got "tokens"`,
			`:3: unknown key "lisen" in http`,
			`:5: devices[0].id: must match [a-z0-9_-]+ (at most 64 characters), got "Demo"`,
			`:7: devices[0].sim.interval: not a duration`,
			`:8: devices[1].port: serial needs a port`,
			`:10: devices[2].token: ws-listen needs a token`,
			`:12: devices[2].baud: want a whole number, got "fast"`,
		}},
		{"yaml syntax", `
http:
  listen: ":8080"
 auth: none
`, []string{`: line 2: did not find expected key`}},
		{"duplicate yaml key", `
http:
  listen: ":8080"
  listen: ":9090"
`, []string{`: line 3: mapping key "listen" already defined at line 2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted:\n%s", tt.yaml)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(lines[i], path+want) {
					t.Errorf("error %d:\n got %s\nwant %s%s…", i, lines[i], path, want)
				}
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "read config") {
		t.Errorf("missing file: %v", err)
	}
}
