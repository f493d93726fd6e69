package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/esp32gw/esp32gw/gateway"
)

func TestRestartKeys(t *testing.T) {
	base := gateway.DefaultConfig()
	base.HTTP.Token = "a-token"
	tests := []struct {
		name   string
		change func(c *gateway.Config)
		want   []string
	}{
		{"devices only", func(c *gateway.Config) { c.Devices = []gateway.DeviceConfig{{ID: "x"}} }, nil},
		{"token to another token is live", func(c *gateway.Config) { c.HTTP.Token = "b-token" }, nil},
		{"token to a generated one", func(c *gateway.Config) { c.HTTP.Token = "" }, []string{"http.token"}},
		{"listen", func(c *gateway.Config) { c.HTTP.Listen = ":9090" }, []string{"http.listen"}},
		{"tls as one key", func(c *gateway.Config) { c.HTTP.TLS = gateway.TLSConfig{Cert: "c", Key: "k"} }, []string{"http.tls"}},
		{"state_dir and mqtt", func(c *gateway.Config) { c.StateDir = "/var/lib/x"; c.MQTT.Broker = "tcp://b:1883" }, []string{"state_dir", "mqtt.broker"}},
		{"nested", func(c *gateway.Config) { c.MQTT.HomeAssistant.Enabled = true }, []string{"mqtt.homeassistant.enabled"}},
		{"limits", func(c *gateway.Config) { c.Limits.Browsers = 10 }, []string{"limits.browsers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base
			tt.change(&next)
			if got := restartKeys(base, next); !slices.Equal(got, tt.want) {
				t.Errorf("restartKeys = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLinkUnchanged(t *testing.T) {
	a := gateway.DeviceConfig{ID: "a", Name: "A", Transport: "ws-dial", URL: "ws://x/ws", Commands: []string{"toggle"}}
	b := a
	b.Name, b.Commands = "B", []string{"on", "off"}
	if !linkUnchanged(a, b) {
		t.Error("a new name and commands should keep the link")
	}
	b.URL = "ws://y/ws"
	if linkUnchanged(a, b) {
		t.Error("a new URL must restart the link")
	}
}

func TestLoadConfigWithDevicesFile(t *testing.T) {
	cfgPath := writeConfig(t, `
state_dir: data
devices:
  - id: demo
    transport: sim
`)
	data := filepath.Join(filepath.Dir(cfgPath), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath, "")
	if err != nil || len(cfg.Devices) != 1 {
		t.Fatalf("without devices.yaml: %d devices, %v", len(cfg.Devices), err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(data, devicesFile), []byte(strings.TrimPrefix(s, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`
devices:
  - id: adopted
    transport: ws-listen
    token: "t-0123456789"
`)
	cfg, err = loadConfig(cfgPath, "")
	if err != nil || len(cfg.Devices) != 2 || cfg.Devices[1].ID != "adopted" || cfg.Devices[1].CommandFormat != "text" {
		t.Fatalf("with devices.yaml: %+v, %v", cfg.Devices, err)
	}

	for name, body := range map[string]string{
		"duplicate id": "devices:\n  - id: demo\n    transport: sim\n",
		"other keys":   "http:\n  listen: \":1\"\ndevices: []\n",
		"bad device":   "devices:\n  - id: x\n    transport: ws-listen\n",
	} {
		write(body)
		if _, err := loadConfig(cfgPath, ""); err == nil || !strings.Contains(err.Error(), devicesFile) {
			t.Errorf("%s: err %v, want one naming %s", name, err, devicesFile)
		}
	}
}
