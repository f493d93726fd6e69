package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/testutil"
)

// rig runs one simulated board against a real hub inside a synctest bubble.
type rig struct {
	hub    *gateway.Hub
	sub    *gateway.Subscription
	cancel context.CancelFunc
	done   chan error
}

func startBoard(t *testing.T, cfg gateway.DeviceConfig) *rig {
	t.Helper()
	c := gateway.Config{Devices: []gateway.DeviceConfig{cfg}}
	c.ApplyDeviceDefaults()
	cfg = c.Devices[0]
	h := gateway.NewHub(gateway.Options{GatewayID: "gw"})
	if err := h.AddDevice(gateway.DeviceInfo{ID: cfg.ID, Transport: cfg.Transport, Commands: cfg.Commands}); err != nil {
		t.Fatal(err)
	}
	sub, _, err := h.Subscribe(-1, 10000)
	if err != nil {
		t.Fatal(err)
	}
	sub.SetFilter(nil, true)
	ctx, cancel := context.WithCancel(context.Background())
	rg := &rig{hub: h, sub: sub, cancel: cancel, done: make(chan error, 1)}
	go func() { rg.done <- New(cfg, nil).Run(ctx, h) }()
	return rg
}

// stop ends the board and returns what Run returned.
func (rg *rig) stop(t *testing.T) error {
	t.Helper()
	rg.cancel()
	err := <-rg.done
	rg.hub.Close()
	return err
}

// messages returns what the subscriber has received so far.
func (rg *rig) messages() []*gateway.Message {
	var out []*gateway.Message
	for {
		select {
		case m := <-rg.sub.C:
			out = append(out, m)
		default:
			return out
		}
	}
}

func values(ms []*gateway.Message, label string) []string {
	var out []string
	for _, m := range ms {
		if m.Kind == gateway.KindEvent && m.Label == label {
			out = append(out, string(m.Value))
		}
	}
	return out
}

func TestBoards(t *testing.T) {
	tests := []struct {
		name  string
		board string
		check func(t *testing.T, ms []*gateway.Message)
	}{
		{"tutorial", "tutorial", func(t *testing.T, ms []*gateway.Message) {
			if got := strings.Join(values(ms, "count"), ","); got != "0,1,2,3,4,5" {
				t.Errorf("count = %s, want 0..5 one per second", got)
			}
			if got := values(ms, "ledStatus"); len(got) != 1 || got[0] != `"LED OFF"` {
				t.Errorf("ledStatus = %v, want one \"LED OFF\" on connect", got)
			}
		}},
		{"climate", "climate", func(t *testing.T, ms []*gateway.Message) {
			for label, rng := range map[string][2]float64{"temperature": {5, 35}, "humidity": {20, 80}} {
				vs := values(ms, label)
				if len(vs) != 6 {
					t.Errorf("%s: %d readings, want 6 (connect + 5 ticks)", label, len(vs))
				}
				for _, v := range vs {
					f, err := strconv.ParseFloat(v, 64)
					if err != nil || f < rng[0] || f > rng[1] {
						t.Errorf("%s = %s, want a number in %v", label, v, rng)
					}
				}
			}
		}},
		{"relay", "relay", func(t *testing.T, ms []*gateway.Message) {
			for _, label := range []string{"relay1", "relay2"} {
				if got := values(ms, label); len(got) == 0 || got[0] != `"off"` {
					t.Errorf("%s = %v, want \"off\" on connect", label, got)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rg := startBoard(t, gateway.DeviceConfig{ID: "dev", Transport: gateway.TransportSim, Sim: gateway.SimConfig{Board: tt.board}})
				time.Sleep(5*time.Second + time.Millisecond)
				synctest.Wait()
				ms := rg.messages()
				if len(ms) == 0 || ms[0].Kind != gateway.KindStatus || !ms[0].Online {
					t.Fatalf("first message is not online status")
				}
				if logs := kindsOf(ms, gateway.KindLog); len(logs) != 1 || !strings.Contains(logs[0].Line, "booted") {
					t.Errorf("boot log lines: %v", logs)
				}
				tt.check(t, ms)
				// Every frame went through wire.Parse and was accepted.
				if n := rg.hub.Counters().Malformed.Load(); n != 0 {
					t.Errorf("%d frames were malformed", n)
				}
				if n := rg.hub.Counters().DroppedReadings.Load(); n != 0 {
					t.Errorf("%d readings dropped by the hub", n)
				}
				if err := rg.stop(t); err != nil {
					t.Errorf("Run returned %v, want nil on ctx end", err)
				}
			})
		})
	}
}

func kindsOf(ms []*gateway.Message, k gateway.MessageKind) []*gateway.Message {
	var out []*gateway.Message
	for _, m := range ms {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

func TestTutorialToggle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rg := startBoard(t, gateway.DeviceConfig{ID: "demo", Transport: gateway.TransportSim,
			Commands: []string{"toggle"}, Sim: gateway.SimConfig{Board: "tutorial", Interval: gateway.Duration(time.Hour)}})
		synctest.Wait()
		rg.messages()
		for i, want := range []string{`"LED ON"`, `"LED OFF"`, `"LED ON"`} {
			if err := rg.hub.Command(context.Background(), "demo", gateway.Command{Value: json.RawMessage(`"toggle"`)}); err != nil {
				t.Fatalf("toggle %d: %v", i, err)
			}
			synctest.Wait()
			if got := values(rg.messages(), "ledStatus"); len(got) != 1 || got[0] != want {
				t.Fatalf("after toggle %d: ledStatus %v, want %s", i+1, got, want)
			}
		}
		st, _ := rg.hub.DeviceState("demo")
		if v := string(st.Labels["ledStatus"].Value); v != `"LED ON"` {
			t.Errorf("snapshot ledStatus %s", v)
		}
		if err := rg.hub.Command(context.Background(), "demo", gateway.Command{Value: json.RawMessage(`"on"`)}); !errors.Is(err, gateway.ErrNotAllowed) {
			t.Errorf("command outside the allow-list: %v", err)
		}
		rg.stop(t)
	})
}

func TestRelayCommands(t *testing.T) {
	type cmd struct{ label, value string }
	tests := []struct {
		name   string
		format string
		cmds   []cmd
		want   [2]string // relay1, relay2 afterwards
		log    string    // a console line the board printed
	}{
		{"json on relay1", gateway.FormatJSON, []cmd{{"relay1", "on"}}, [2]string{"on", "off"}, ""},
		{"json relay2 on then off", gateway.FormatJSON, []cmd{{"relay2", "on"}, {"relay2", "off"}}, [2]string{"off", "off"}, ""},
		{"json toggle both", gateway.FormatJSON, []cmd{{"relay1", "toggle"}, {"relay2", "toggle"}, {"relay2", "toggle"}, {"relay2", "toggle"}}, [2]string{"on", "on"}, ""},
		{"json no label is relay1", gateway.FormatJSON, []cmd{{"", "toggle"}}, [2]string{"on", "off"}, ""},
		{"json unknown relay", gateway.FormatJSON, []cmd{{"relay3", "on"}}, [2]string{"off", "off"}, `no relay "relay3"`},
		{"text format drives relay1", gateway.FormatText, []cmd{{"relay2", "on"}}, [2]string{"on", "off"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rg := startBoard(t, gateway.DeviceConfig{ID: "relays", Transport: gateway.TransportSim, CommandFormat: tt.format,
					Commands: []string{"on", "off", "toggle"}, Sim: gateway.SimConfig{Board: "relay", Interval: gateway.Duration(time.Hour)}})
				synctest.Wait()
				for _, c := range tt.cmds {
					v, _ := json.Marshal(c.value)
					if err := rg.hub.Command(context.Background(), "relays", gateway.Command{Label: c.label, Value: v}); err != nil {
						t.Fatalf("command %v: %v", c, err)
					}
				}
				synctest.Wait()
				ms := rg.messages()
				st, _ := rg.hub.DeviceState("relays")
				for i, want := range tt.want {
					label := fmt.Sprintf("relay%d", i+1)
					if got := string(st.Labels[label].Value); got != `"`+want+`"` {
						t.Errorf("%s = %s, want %q", label, got, want)
					}
				}
				var lines []string
				for _, m := range kindsOf(ms, gateway.KindLog) {
					lines = append(lines, m.Line)
				}
				if tt.log != "" && !strings.Contains(strings.Join(lines, "\n"), tt.log) {
					t.Errorf("console %q lacks %q", lines, tt.log)
				}
				rg.stop(t)
			})
		})
	}
}

// TestRunStops uses real time: Run returns promptly once ctx ends, the
// device goes offline with a reason, and no goroutine is left behind.
func TestRunStops(t *testing.T) {
	testutil.CheckGoroutines(t)
	rg := startBoard(t, gateway.DeviceConfig{ID: "demo", Transport: gateway.TransportSim,
		Sim: gateway.SimConfig{Board: "tutorial", Interval: gateway.Duration(10 * time.Millisecond)}})
	deadline := time.After(10 * time.Second)
	counts := 0
	for counts < 3 {
		select {
		case m := <-rg.sub.C:
			if m.Kind == gateway.KindEvent && m.Label == "count" {
				counts++
			}
		case <-deadline:
			t.Fatalf("only %d count readings within 10 s", counts)
		}
	}
	rg.cancel()
	select {
	case err := <-rg.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	st, _ := rg.hub.DeviceState("demo")
	if st.Online || st.Reason == "" {
		t.Errorf("after Run: online %v reason %q, want offline with a reason", st.Online, st.Reason)
	}
	var last *gateway.Message
	for _, m := range rg.messages() {
		if m.Kind == gateway.KindStatus {
			last = m
		}
	}
	if last == nil || last.Online {
		t.Errorf("no offline status reached subscribers")
	}
	if err := rg.hub.Command(context.Background(), "demo", gateway.Command{Value: json.RawMessage(`"toggle"`)}); !errors.Is(err, gateway.ErrNotAllowed) && !errors.Is(err, gateway.ErrOffline) {
		t.Errorf("command after stop: %v", err)
	}
	rg.hub.Close()
}

func TestRunUnknownDevice(t *testing.T) {
	h := gateway.NewHub(gateway.Options{})
	err := New(gateway.DeviceConfig{ID: "ghost", Transport: gateway.TransportSim}, nil).Run(context.Background(), h)
	if !errors.Is(err, gateway.ErrUnknownDevice) {
		t.Errorf("Run for an unregistered device: %v, want ErrUnknownDevice", err)
	}
}

// A simulated board reports its attributes on connect and every
// AttributeInterval, as the firmware library does: the Fleet page of a
// fresh checkout has something to show.
func TestSimAttributes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rg := startBoard(t, gateway.DeviceConfig{ID: "dev", Transport: gateway.TransportSim, Sim: gateway.SimConfig{Board: "climate", Interval: gateway.Duration(time.Hour)}})
		time.Sleep(2*AttributeInterval + time.Millisecond)
		synctest.Wait()
		infos := kindsOf(rg.messages(), gateway.KindInfo)
		if len(infos) != 3 {
			t.Fatalf("%d info messages in two attribute intervals, want 3 (connect and two more)", len(infos))
		}
		info := infos[2].Info
		for _, name := range []string{"fw", "project", "chip", "mac", "rssi", "heap", "uptime", "reset"} {
			if info[name] == nil {
				t.Errorf("no %s in %s", name, infos[2].Value)
			}
		}
		if string(info["uptime"]) != "30" || string(info["project"]) != `"esp32gw-sim-climate"` {
			t.Errorf("uptime %s project %s, want 30 and esp32gw-sim-climate", info["uptime"], info["project"])
		}
		if err := rg.stop(t); err != nil {
			t.Error(err)
		}
	})
}
