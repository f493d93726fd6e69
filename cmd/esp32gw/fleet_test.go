package main

import (
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/esp32gw/esp32gw/adapters/mdns"
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

// index (after every change of the devices) drops the pending boards that
// are devices now.
func TestFleetIndexPrunes(t *testing.T) {
	f := &fleet{}
	f.pending = gateway.NewPending(gateway.PendingOptions{Taken: f.taken})
	defer f.pending.Close()
	f.index(nil)
	f.pending.AddDiscovered("porch", "ws://192.168.1.51:80/ws", "192.168.1.51:80", nil)
	f.pending.AddDiscovered("shed", "ws://192.168.1.52:80/ws", "192.168.1.52:80", nil)
	f.pending.AddDiscovered("roof", "ws://192.168.1.53:80/ws", "192.168.1.53:80", nil)
	f.index([]gateway.DeviceConfig{
		{ID: "porch", Transport: gateway.TransportWSDial, URL: "ws://192.168.1.99/ws"},  // by id
		{ID: "garden", Transport: gateway.TransportWSDial, URL: "ws://192.168.1.52/ws"}, // by URL
	})
	if l := f.pending.List(); len(l) != 1 || l[0].ID != "roof" {
		t.Errorf("pending after the devices changed: %+v, want only roof", l)
	}
}

// mDNS advertises where http.listen is reachable: everywhere when bound to
// every address, on one interface and address when bound to one, nowhere
// when bound to loopback.
func TestMDNSPlace(t *testing.T) {
	if ifs, addrs, why := mdnsPlace(&net.TCPAddr{IP: net.IPv4zero, Port: 8080}); ifs != nil || addrs != nil || why != "" {
		t.Errorf("0.0.0.0: %v %v %q", ifs, addrs, why)
	}
	if ifs, addrs, why := mdnsPlace(&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}); ifs != nil || addrs != nil || why != "" {
		t.Errorf("[::]: %v %v %q", ifs, addrs, why)
	}
	if _, _, why := mdnsPlace(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}); why != "http.listen is loopback" {
		t.Errorf("127.0.0.1: why %q", why)
	}
	if _, _, why := mdnsPlace(&net.TCPAddr{IP: net.ParseIP("fd00::1234"), Port: 8080}); why == "" {
		t.Error("a specific IPv6 address: advertised")
	}
	ifis, _ := net.Interfaces()
	for _, ifi := range ifis {
		as, _ := ifi.Addrs()
		for _, a := range as {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil || n.IP.IsLoopback() {
				continue
			}
			ifs, addrs, why := mdnsPlace(&net.TCPAddr{IP: n.IP, Port: 8080})
			if why != "" || len(ifs) != 1 || ifs[0] != ifi.Name || len(addrs) != 1 || !addrs[0].Equal(n.IP) {
				t.Errorf("%s (on %s): %v %v %q", n.IP, ifi.Name, ifs, addrs, why)
			}
			return
		}
	}
	t.Log("no non-loopback IPv4 address here: the bound-to-one-address case is not checked")
}

// A board advertising an id that is not a device id is listed under one
// made from it, or ignored; either is logged once per board.
func TestBoardIDs(t *testing.T) {
	var logs strings.Builder
	n := &boardIDs{log: slog.New(slog.NewTextHandler(&logs, nil))}
	for _, c := range []struct {
		adv, want string
		ok        bool
	}{
		{"porch", "porch", true},
		{"Kitchen Board", "kitchen-board", true},
		{"Kitchen Board", "kitchen-board", true}, // again: not logged again
		{"esp32.Shed", "esp32-shed", true},
		{strings.Repeat("x", 70), "", false},
		{strings.Repeat("x", 70), "", false},
		{"Bridge", "", false}, // reserved for the gateway's own MQTT topics
	} {
		id, ok := n.id(mdns.Board{ID: c.adv, URL: "ws://10.0.0.1:80/ws"})
		if ok != c.ok || (ok && id != c.want) {
			t.Errorf("%q: %q %v, want %q %v", c.adv, id, ok, c.want, c.ok)
		}
	}
	out := logs.String()
	if strings.Count(out, "level=INFO") != 4 || strings.Count(out, "kitchen-board") != 1 || strings.Count(out, "board ignored") != 2 || strings.Contains(out, "porch") {
		t.Errorf("logs:\n%s", out)
	}
}
