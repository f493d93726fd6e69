package main

import (
	"testing"

	"github.com/esp32gw/esp32gw/gateway"
)

// A board found over mDNS is reported with its port ("ws://IP:80/ws"); a
// device configured by the same URL without it is the same board and keeps
// the board out of /api/pending, whatever id its TXT carries.
func TestFleetTakenURL(t *testing.T) {
	f := &fleet{}
	f.index([]gateway.DeviceConfig{
		{ID: "door", Transport: gateway.TransportWSDial, URL: "ws://192.168.1.50/ws"},
		{ID: "shed", Transport: gateway.TransportWSDial, URL: "WSS://Shed.Local/socket?x=1"},
		{ID: "roof", Transport: gateway.TransportWSDial, URL: "ws://192.168.1.52"},
	})
	for _, c := range []struct {
		id, url string
		want    bool
	}{
		{"esp32-door", "ws://192.168.1.50:80/ws", true},
		{"esp32-door", "ws://192.168.1.50/ws", true},
		{"esp32-shed", "wss://shed.local:443/socket?x=1", true},
		{"esp32-roof", "ws://192.168.1.52:80/", true},
		{"door", "ws://192.168.1.99:80/ws", true},            // id taken
		{"esp32-door", "ws://192.168.1.50:8080/ws", false},   // another port
		{"esp32-door", "ws://192.168.1.50:80/socket", false}, // another path
		{"porch", "ws://192.168.1.51:80/ws", false},
	} {
		if got := f.taken(c.id, c.url); got != c.want {
			t.Errorf("taken(%q, %q) = %v, want %v", c.id, c.url, got, c.want)
		}
	}
}
