package gateway

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Devices = []DeviceConfig{
		{ID: "demo", Transport: TransportSim, Commands: []string{"toggle"}},
		{ID: "kitchen", Transport: TransportWSDial, URL: "ws://192.168.1.50/ws"},
		{ID: "garage", Transport: TransportWSListen, Token: "long-random"},
		{ID: "bench", Transport: TransportSerial, Port: "/dev/ttyUSB0"},
		{ID: "usb", Transport: TransportSerial, Match: &SerialMatch{VID: "10C4", PID: "ea60"}},
	}
	c.ApplyDeviceDefaults()
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // "field: message fragment", in order
	}{
		{"default config", func(c *Config) {}, nil},
		{"bad gateway id", func(c *Config) { c.GatewayID = "Pi Garage" }, []string{"gateway_id: must match [a-z0-9_-]+"}},
		{"empty state dir", func(c *Config) { c.StateDir = "" }, []string{"state_dir: must not be empty"}},
		{"listen without port", func(c *Config) { c.HTTP.Listen = "8080" }, []string{`http.listen: must be HOST:PORT or :PORT`}},
		{"auth typo", func(c *Config) { c.HTTP.Auth = "tokens" }, []string{`http.auth: must be token or none, got "tokens"`}},
		{"origin with path", func(c *Config) { c.HTTP.AllowedOrigins = []string{"https://ok.example", "https://x.example/app", "*"} },
			[]string{"http.allowed_origins[1]: must be an origin", "http.allowed_origins[2]: must be an origin"}},
		{"tls half set", func(c *Config) { c.HTTP.TLS.Cert = "cert.pem" }, []string{"http.tls: cert and key must both be set"}},
		{"mqtt bad broker", func(c *Config) { c.MQTT.Enabled = true; c.MQTT.Broker = "localhost:1883" },
			[]string{`mqtt.broker: must be a URL like tcp://host:1883 (tcp, ssl, ws, wss), got "localhost:1883"`}},
		{"mqtt broker password redacted", func(c *Config) { c.MQTT.Enabled = true; c.MQTT.Broker = "http://gw:s3cret@broker:1883" },
			[]string{`mqtt.broker: must be a URL like tcp://host:1883 (tcp, ssl, ws, wss), got "http://gw:xxxxx@broker:1883"`}},
		{"mqtt unparsable broker password redacted", func(c *Config) { c.MQTT.Enabled = true; c.MQTT.Broker = "tcp://gw:s3c ret%@broker:1883" },
			[]string{`mqtt.broker: must be a URL like tcp://host:1883 (tcp, ssl, ws, wss), got "xxxxx@broker:1883"`}},
		{"reserved device id bridge", func(c *Config) { c.Devices[0].ID = "bridge" }, []string{`devices[0].id: "bridge" is reserved`}},
		{"mqtt broker http", func(c *Config) { c.MQTT.Enabled = true; c.MQTT.Broker = "http://broker:1883" }, []string{"mqtt.broker: must be a URL"}},
		{"mqtt wildcard prefix", func(c *Config) { c.MQTT.Enabled = true; c.MQTT.TopicPrefix = "a/#" }, []string{"mqtt.topic_prefix: must be non-empty and hold no '+' or '#'"}},
		{"mqtt empty client id", func(c *Config) { c.MQTT.Enabled = true; c.MQTT.ClientID = "" }, []string{"mqtt.client_id: must not be empty"}},
		{"mqtt qos", func(c *Config) { c.MQTT.QoS = 3 }, []string{"mqtt.qos: must be 0, 1 or 2, got 3"}},
		{"homeassistant prefix", func(c *Config) {
			c.MQTT.Enabled = true
			c.MQTT.HomeAssistant = HomeAssistantConfig{Enabled: true, Prefix: ""}
		}, []string{"mqtt.homeassistant.prefix: must be non-empty"}},
		{"bad device id", func(c *Config) { c.Devices[0].ID = "Demo" }, []string{`devices[0].id: must match [a-z0-9_-]+ (at most 64 characters), got "Demo"`}},
		{"duplicate id", func(c *Config) { c.Devices[3].ID = "kitchen" }, []string{`devices[3].id: duplicate id "kitchen" (also devices[1])`}},
		{"command format", func(c *Config) { c.Devices[0].CommandFormat = "xml" }, []string{`devices[0].command_format: must be text or json, got "xml"`}},
		{"empty command", func(c *Config) { c.Devices[0].Commands = []string{"toggle", ""} }, []string{"devices[0].commands[1]: must not be empty"}},
		{"missing transport", func(c *Config) { c.Devices[0].Transport = "" }, []string{"devices[0].transport: missing: must be one of sim, ws-dial, ws-listen, serial"}},
		{"unknown transport", func(c *Config) { c.Devices[0].Transport = "mqtt" }, []string{`devices[0].transport: must be one of sim, ws-dial, ws-listen, serial, got "mqtt"`}},
		{"sim board", func(c *Config) { c.Devices[0].Sim.Board = "toaster" }, []string{`devices[0].sim.board: must be one of tutorial, climate, relay, got "toaster"`}},
		{"sim interval", func(c *Config) { c.Devices[0].Sim.Interval = Duration(time.Millisecond) }, []string{"devices[0].sim.interval: must be at least 10ms"}},
		{"ws-dial without url", func(c *Config) { c.Devices[1].URL = "" }, []string{"devices[1].url: ws-dial needs the board's WebSocket URL"}},
		{"ws-dial http url", func(c *Config) { c.Devices[1].URL = "http://192.168.1.50/ws" }, []string{`devices[1].url: must be a ws:// or wss:// URL with a host, got "http://192.168.1.50/ws"`}},
		{"ws-dial url without host", func(c *Config) { c.Devices[1].URL = "ws:///ws" }, []string{"devices[1].url: must be a ws:// or wss:// URL with a host"}},
		{"ws-dial unparsable url", func(c *Config) { c.Devices[1].URL = "ws://bad host/ws" }, []string{"devices[1].url: must be a ws:// or wss:// URL"}},
		{"ws-listen without token", func(c *Config) { c.Devices[2].Token = "" }, []string{"devices[2].token: ws-listen needs a token"}},
		{"serial without port or match", func(c *Config) { c.Devices[3].Port = "" }, []string{"devices[3].port: serial needs a port (e.g. /dev/ttyUSB0) or match: {vid, pid, serial}"}},
		{"serial with empty match", func(c *Config) { c.Devices[4].Match = &SerialMatch{} }, []string{"devices[4].port: serial needs a port"}},
		{"serial port and match", func(c *Config) { c.Devices[3].Match = &SerialMatch{VID: "10c4"} }, []string{"devices[3].match: set port or match, not both"}},
		{"serial bad vid", func(c *Config) { c.Devices[4].Match.VID = "10c" }, []string{`devices[4].match.vid: must be 4 hex digits like 10c4, got "10c"`}},
		{"serial bad pid", func(c *Config) { c.Devices[4].Match.PID = "xyz1" }, []string{`devices[4].match.pid: must be 4 hex digits like ea60, got "xyz1"`}},
		{"serial baud too high", func(c *Config) { c.Devices[3].Baud = 5000000 }, []string{"devices[3].baud: must be between 300 and 4000000, got 5000000"}},
		{"serial baud too low", func(c *Config) { c.Devices[3].Baud = 9 }, []string{"devices[3].baud: must be between 300 and 4000000, got 9"}},
		{"serial negative silence", func(c *Config) { c.Devices[3].SilenceTimeout = Duration(-time.Second) }, []string{"devices[3].silence_timeout: must not be negative"}},
		{"every problem at once", func(c *Config) {
			c.HTTP.Auth = "basic"
			c.Devices[1].URL = ""
			c.Devices[2].Token = ""
			c.Devices[4].ID = "demo"
		}, []string{"http.auth:", "devices[1].url:", "devices[2].token:", "devices[4].id: duplicate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted the config; want %q", tt.want)
			}
			errs := err.(interface{ Unwrap() []error }).Unwrap()
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Errorf("error %d is %T, want *FieldError", i, e)
				}
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, e, tt.want[i])
				}
			}
		})
	}
}

func TestApplyDeviceDefaults(t *testing.T) {
	c := Config{Devices: []DeviceConfig{{ID: "s", Transport: TransportSim}, {ID: "p", Transport: TransportSerial, Port: "/dev/ttyACM0"}}}
	c.ApplyDeviceDefaults()
	s, p := c.Devices[0], c.Devices[1]
	if s.Name != "s" || s.CommandFormat != FormatText || s.Sim.Board != "tutorial" || time.Duration(s.Sim.Interval) != time.Second {
		t.Errorf("sim defaults: %+v", s)
	}
	if p.Baud != 115200 {
		t.Errorf("serial baud default %d", p.Baud)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1s", time.Second, true},
		{"250ms", 250 * time.Millisecond, true},
		{"1m30s", 90 * time.Second, true},
		{"5", 0, false},
		{"fast", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if (err == nil) != tt.ok || time.Duration(d) != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, %v", tt.in, time.Duration(d), err)
			}
			if tt.ok {
				b, _ := d.MarshalText()
				var back Duration
				if back.UnmarshalText(b) != nil || back != d {
					t.Errorf("round trip %q -> %q", tt.in, b)
				}
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"demo": true, "a-1_b": true, strings.Repeat("a", 64): true,
		"": false, "Demo": false, "a b": false, "a/b": false, "a.b": false, strings.Repeat("a", 65): false, "é": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestFormatTime(t *testing.T) {
	at := time.Date(2026, 11, 23, 11, 0, 0, 123_456_789, time.FixedZone("CET", 3600))
	if got := FormatTime(at); got != "2026-11-23T10:00:00.123Z" {
		t.Errorf("FormatTime = %q", got)
	}
	if got := FormatTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); got != "2026-01-02T03:04:05.000Z" {
		t.Errorf("FormatTime keeps milliseconds: %q", got)
	}
}
