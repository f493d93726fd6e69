package gateway

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is the whole config.yaml. Decode it over DefaultConfig() so absent
// keys keep their defaults, then call Validate.
type Config struct {
	GatewayID string         `yaml:"gateway_id"`
	StateDir  string         `yaml:"state_dir"`
	HTTP      HTTPConfig     `yaml:"http"`
	MQTT      MQTTConfig     `yaml:"mqtt"`
	Devices   []DeviceConfig `yaml:"devices"`

	History     HistoryConfig `yaml:"history"`
	Limits      LimitsConfig  `yaml:"limits"`
	MDNS        MDNSConfig    `yaml:"mdns"`
	EnrollToken string        `yaml:"enroll_token"` // empty: generated into state_dir/enroll_token
}

// HTTPConfig is the browser and API side.
type HTTPConfig struct {
	Listen         string    `yaml:"listen"`
	Auth           string    `yaml:"auth"` // token | none
	Token          string    `yaml:"token"`
	AllowedOrigins []string  `yaml:"allowed_origins"`
	AllowedHosts   []string  `yaml:"allowed_hosts"` // with auth: none, extra Host names accepted
	TLS            TLSConfig `yaml:"tls"`
}

// TLSConfig turns on HTTPS/WSS when both files are set.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// MQTTConfig is the MQTT bridge.
type MQTTConfig struct {
	Enabled       bool                `yaml:"enabled"`
	Broker        string              `yaml:"broker"`
	ClientID      string              `yaml:"client_id"`
	Username      string              `yaml:"username"`
	Password      string              `yaml:"password"`
	CAFile        string              `yaml:"ca_file"` // PEM CA bundle to trust for ssl:// and wss:// (default: the system's)
	TopicPrefix   string              `yaml:"topic_prefix"`
	QoS           int                 `yaml:"qos"`
	Retain        bool                `yaml:"retain"`
	HomeAssistant HomeAssistantConfig `yaml:"homeassistant"`
	Cluster       bool                `yaml:"cluster"`
}

// HomeAssistantConfig controls MQTT discovery.
type HomeAssistantConfig struct {
	Enabled bool   `yaml:"enabled"`
	Prefix  string `yaml:"prefix"`
}

// Transport names.
const (
	TransportSim      = "sim"
	TransportWSDial   = "ws-dial"
	TransportWSListen = "ws-listen"
	TransportSerial   = "serial"
)

// Command formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// DeviceConfig is one board.
type DeviceConfig struct {
	ID            string   `yaml:"id"`
	Name          string   `yaml:"name"`
	Transport     string   `yaml:"transport"`
	Commands      []string `yaml:"commands"`
	CommandFormat string   `yaml:"command_format"`

	URL string `yaml:"url"` // ws-dial

	Token string `yaml:"token"` // ws-listen
	// EnrolledAs is the id a board enrolled under before it was adopted as
	// this device (devices.yaml, written by adoption): a later dial-in with
	// the enroll token under that id is refused.
	EnrolledAs string `yaml:"enrolled_as"`
	// FromStateDir: the device lives in state_dir/devices.yaml (added from
	// the dashboard or the API), not in config.yaml. Set by the loader.
	FromStateDir bool `yaml:"-"`

	Port           string       `yaml:"port"` // serial
	Match          *SerialMatch `yaml:"match"`
	Baud           int          `yaml:"baud"`
	ResetOnOpen    bool         `yaml:"reset_on_open"`
	SilenceTimeout Duration     `yaml:"silence_timeout"` // serial: offline after this long without a line; 0 = off

	Sim SimConfig `yaml:"sim"` // sim
}

// SerialMatch finds a serial port by its USB identity.
type SerialMatch struct {
	VID    string `yaml:"vid"`
	PID    string `yaml:"pid"`
	Serial string `yaml:"serial"`
}

// SimConfig chooses what a simulated board does.
type SimConfig struct {
	Board    string   `yaml:"board"`    // tutorial | climate | relay
	Interval Duration `yaml:"interval"` // time between readings
}

// Simulated board kinds.
var SimBoards = []string{"tutorial", "climate", "relay"}

// Duration is a time.Duration written as "1s", "250ms" in YAML.
type Duration time.Duration

// UnmarshalText parses a duration (see ParseDuration: Go's units plus d and y).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as "1s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DefaultConfig is the config with every default filled in and no devices.
func DefaultConfig() Config {
	return Config{
		StateDir: "data",
		HTTP:     HTTPConfig{Listen: ":8080", Auth: "token"},
		MQTT: MQTTConfig{
			Broker: "tcp://localhost:1883", ClientID: "esp32gw", TopicPrefix: "esp32gw",
			QoS: 1, Retain: true, HomeAssistant: HomeAssistantConfig{Prefix: "homeassistant"},
		},
		History: defaultHistory(),
		Limits:  defaultLimits(),
	}
}

// ApplyDeviceDefaults fills per-device defaults that YAML cannot (list items
// start from zero values).
func (c *Config) ApplyDeviceDefaults() {
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Name == "" {
			d.Name = d.ID
		}
		if d.CommandFormat == "" {
			d.CommandFormat = FormatText
		}
		if d.Transport == TransportSerial && d.Baud == 0 {
			d.Baud = 115200
		}
		if d.Transport == TransportSim {
			if d.Sim.Board == "" {
				d.Sim.Board = "tutorial"
			}
			if d.Sim.Interval == 0 {
				d.Sim.Interval = Duration(time.Second)
			}
		}
	}
}

// FieldError is one problem in the config, named by its path
// ("devices[2].url") so the loader can add the YAML line.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Validate reports every problem at once, joined; each is a *FieldError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.GatewayID != "" && !ValidID(c.GatewayID) {
		bad("gateway_id", "must match [a-z0-9_-]+ (it is used in MQTT topics), got %q", c.GatewayID)
	}
	if c.StateDir == "" {
		bad("state_dir", "must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "must be HOST:PORT or :PORT (e.g. \":8080\"), got %q", c.HTTP.Listen)
	}
	switch c.HTTP.Auth {
	case "token", "none":
	default:
		bad("http.auth", "must be token or none, got %q", c.HTTP.Auth)
	}
	for i, o := range c.HTTP.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad(fmt.Sprintf("http.allowed_origins[%d]", i), "must be an origin like https://host:port, got %q", o)
		}
	}
	if (c.HTTP.TLS.Cert == "") != (c.HTTP.TLS.Key == "") {
		bad("http.tls", "cert and key must both be set (HTTPS) or both be empty")
	}
	if c.MQTT.Enabled {
		u, err := url.Parse(c.MQTT.Broker)
		if err != nil || u.Host == "" || !oneOf(u.Scheme, "tcp", "ssl", "tls", "ws", "wss", "mqtt", "mqtts") {
			// Never echo a password: user:pass@ may be in the URL.
			shown := c.MQTT.Broker
			if err == nil {
				shown = u.Redacted()
			} else if i := strings.LastIndex(shown, "@"); i >= 0 {
				shown = "xxxxx" + shown[i:]
			}
			bad("mqtt.broker", "must be a URL like tcp://host:1883 (tcp, ssl, ws, wss), got %q", shown)
		}
		if c.MQTT.CAFile != "" {
			if _, err := LoadCAFile(c.MQTT.CAFile); err != nil {
				bad("mqtt.ca_file", "%v", err)
			}
		}
		if c.MQTT.ClientID == "" {
			bad("mqtt.client_id", "must not be empty")
		}
		if c.MQTT.TopicPrefix == "" || strings.ContainsAny(c.MQTT.TopicPrefix, "+#") {
			bad("mqtt.topic_prefix", "must be non-empty and hold no '+' or '#', got %q", c.MQTT.TopicPrefix)
		}
		if c.MQTT.HomeAssistant.Enabled && (c.MQTT.HomeAssistant.Prefix == "" || strings.ContainsAny(c.MQTT.HomeAssistant.Prefix, "+#")) {
			bad("mqtt.homeassistant.prefix", "must be non-empty and hold no '+' or '#'")
		}
	}
	c.validateStore(bad)
	if c.MQTT.QoS < 0 || c.MQTT.QoS > 2 {
		bad("mqtt.qos", "must be 0, 1 or 2, got %d", c.MQTT.QoS)
	}
	seen := map[string]int{}
	for i, d := range c.Devices {
		f := func(name string) string { return fmt.Sprintf("devices[%d].%s", i, name) }
		if !ValidID(d.ID) {
			bad(f("id"), "must match [a-z0-9_-]+ (at most 64 characters), got %q", d.ID)
		} else if d.ID == "bridge" {
			bad(f("id"), `"bridge" is reserved: MQTT topic PREFIX/bridge/state is the gateway's own; choose another id`)
		} else if j, dup := seen[d.ID]; dup {
			bad(f("id"), "duplicate id %q (also devices[%d])", d.ID, j)
		} else {
			seen[d.ID] = i
		}
		switch d.CommandFormat {
		case "", FormatText, FormatJSON:
		default:
			bad(f("command_format"), "must be text or json, got %q", d.CommandFormat)
		}
		for j, cmd := range d.Commands {
			if cmd == "" {
				bad(f(fmt.Sprintf("commands[%d]", j)), "must not be empty")
			}
		}
		switch d.Transport {
		case TransportSim:
			if d.Sim.Board != "" && !oneOf(d.Sim.Board, SimBoards...) {
				bad(f("sim.board"), "must be one of %s, got %q", strings.Join(SimBoards, ", "), d.Sim.Board)
			}
			if d.Sim.Interval < 0 || (d.Sim.Interval > 0 && time.Duration(d.Sim.Interval) < 10*time.Millisecond) {
				bad(f("sim.interval"), "must be at least 10ms")
			}
		case TransportWSDial:
			u, err := url.Parse(d.URL)
			if d.URL == "" {
				bad(f("url"), "ws-dial needs the board's WebSocket URL, e.g. ws://192.168.1.50/ws")
			} else if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
				bad(f("url"), "must be a ws:// or wss:// URL with a host, got %q", d.URL)
			}
		case TransportWSListen:
			if d.EnrolledAs != "" && !ValidID(d.EnrolledAs) {
				bad(f("enrolled_as"), "must match [a-z0-9_-]+, got %q", d.EnrolledAs)
			}
			if d.Token == "" {
				bad(f("token"), "ws-listen needs a token the board presents (Authorization: Bearer TOKEN)")
			}
		case TransportSerial:
			if d.Port == "" && (d.Match == nil || (d.Match.VID == "" && d.Match.PID == "" && d.Match.Serial == "")) {
				bad(f("port"), "serial needs a port (e.g. /dev/ttyUSB0) or match: {vid, pid, serial}")
			}
			if d.Port != "" && d.Match != nil {
				bad(f("match"), "set port or match, not both")
			}
			if d.Match != nil {
				if d.Match.VID != "" && !isHex4(d.Match.VID) {
					bad(f("match.vid"), "must be 4 hex digits like 10c4, got %q", d.Match.VID)
				}
				if d.Match.PID != "" && !isHex4(d.Match.PID) {
					bad(f("match.pid"), "must be 4 hex digits like ea60, got %q", d.Match.PID)
				}
			}
			if d.Baud < 0 || (d.Baud != 0 && d.Baud < 300) || d.Baud > 4000000 { // 0: default 115200
				bad(f("baud"), "must be between 300 and 4000000, got %d", d.Baud)
			}
			if d.SilenceTimeout < 0 {
				bad(f("silence_timeout"), "must not be negative")
			}
		case "":
			bad(f("transport"), "missing: must be one of sim, ws-dial, ws-listen, serial")
		default:
			bad(f("transport"), "must be one of sim, ws-dial, ws-listen, serial, got %q", d.Transport)
		}
	}
	return errors.Join(errs...)
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// LoadCAFile reads a PEM CA bundle for the MQTT bridge's TLS.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
