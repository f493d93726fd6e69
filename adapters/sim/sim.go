// Package sim provides simulated boards that behave like real ones, so a fresh
// checkout shows live data and tests have a board without hardware. A
// simulated board produces the same bytes a real board sends and hands them
// through gateway/wire and the gateway.Sink like any other transport; it
// receives commands as the bytes its command_format produces. Each Board runs
// one goroutine, owned by Run, which returns when its context ends.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/gateway/wire"
)

// The core starts and stops a Board through gateway.Transport.
var _ gateway.Transport = (*Board)(nil)

// Board is one simulated board.
type Board struct {
	cfg gateway.DeviceConfig
	log *slog.Logger
}

// New returns a simulated board for a device with transport sim.
func New(cfg gateway.DeviceConfig, log *slog.Logger) *Board {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Board{cfg: cfg, log: log.With("device", cfg.ID, "transport", "sim")}
}

// behaviour is what a kind of board does; it is only used by the Run goroutine.
type behaviour interface {
	// hello is what the board sends when the link comes up: its whole state.
	hello() [][]byte
	// tick is what the board sends every interval.
	tick() [][]byte
	// receive handles one command frame and returns what the board sends back.
	receive(frame []byte) (out [][]byte, log string)
}

// Run keeps the simulated link up until ctx ends.
func (b *Board) Run(ctx context.Context, sink gateway.Sink) error {
	var beh behaviour
	seed := uint64(0)
	for _, c := range b.cfg.ID {
		seed = seed*31 + uint64(c)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	switch b.cfg.Sim.Board {
	case "climate":
		beh = &climate{rng: rng, temp: 21 + rng.Float64()*2, hum: 45 + rng.Float64()*10}
	case "relay":
		beh = &relay{state: [2]bool{}}
	default:
		beh = &tutorial{}
	}
	interval := time.Duration(b.cfg.Sim.Interval)
	if interval <= 0 {
		interval = time.Second
	}

	// Commands reach the board goroutine as bytes; send returns once the board
	// has taken them, as a real link returns once the frame is written.
	inbox := make(chan []byte)
	send := func(ctx context.Context, c gateway.Command) error {
		frame := wire.EncodeCommand(b.cfg.CommandFormat, c)
		select {
		case inbox <- frame:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	link, err := sink.Attach(b.cfg.ID, send)
	if err != nil {
		return fmt.Errorf("sim %s: %w", b.cfg.ID, err)
	}
	defer func() { link.Detach(gateway.StopReason(ctx)) }()
	b.log.Info("simulated board up", "board", b.cfg.Sim.Board, "interval", interval)
	link.Log(fmt.Sprintf("esp32gw simulated %s board %q booted", b.cfg.Sim.Board, b.cfg.ID))

	deliver := func(frames [][]byte) {
		for _, f := range frames {
			rs, err := wire.Parse(f)
			if err != nil {
				link.Malformed()
				continue
			}
			link.Publish(rs...)
		}
	}
	attrs := newAttributes(b.cfg, seed, rng)
	deliver(beh.hello())
	deliver([][]byte{attrs.frame()})
	t := time.NewTicker(interval)
	defer t.Stop()
	at := time.NewTicker(AttributeInterval)
	defer at.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-at.C:
			deliver([][]byte{attrs.frame()})
		case <-t.C:
			deliver(beh.tick())
		case f := <-inbox:
			out, line := beh.receive(f)
			if line != "" {
				link.Log(line)
			}
			deliver(out)
		}
	}
}

func frame(label string, value any) []byte {
	b, _ := json.Marshal(map[string]any{"label": label, "value": value})
	return b
}

// tutorial is the classic ESPAsyncWebServer sketch: a counter every second,
// an LED reported as "LED ON"/"LED OFF", and the text command "toggle".
type tutorial struct {
	count int
	led   bool
}

func (t *tutorial) ledText() string {
	if t.led {
		return "LED ON"
	}
	return "LED OFF"
}

func (t *tutorial) hello() [][]byte {
	return [][]byte{frame("count", t.count), frame("ledStatus", t.ledText())}
}

func (t *tutorial) tick() [][]byte {
	t.count++
	return [][]byte{frame("count", t.count)}
}

func (t *tutorial) receive(f []byte) ([][]byte, string) {
	c := wire.ParseCommand(f)
	switch gateway.CommandKey(c.Value) {
	case "toggle":
		t.led = !t.led
	case "on":
		t.led = true
	case "off":
		t.led = false
	default:
		return nil, fmt.Sprintf("unknown command %q", f)
	}
	return [][]byte{frame("ledStatus", t.ledText())}, ""
}

// climate reports temperature and humidity as a flat object, drifting with noise.
type climate struct {
	rng       *rand.Rand
	temp, hum float64
	n         int
}

func (c *climate) hello() [][]byte { return c.tick() }

func (c *climate) tick() [][]byte {
	c.n++
	// A slow daily-like wave plus a random walk plus sensor noise.
	c.temp += (c.rng.Float64()-0.5)*0.1 + 0.02*math.Sin(float64(c.n)/60)
	c.temp = math.Max(5, math.Min(35, c.temp))
	c.hum += (c.rng.Float64() - 0.5) * 0.4
	c.hum = math.Max(20, math.Min(80, c.hum))
	noise := (c.rng.Float64() - 0.5) * 0.1
	b, _ := json.Marshal(map[string]float64{
		"temperature": math.Round((c.temp+noise)*100) / 100,
		"humidity":    math.Round(c.hum*10) / 10,
	})
	return [][]byte{b}
}

func (c *climate) receive(f []byte) ([][]byte, string) {
	return nil, fmt.Sprintf("climate board takes no commands, ignored %q", f)
}

// relay has two relays reported as "on"/"off" in an array frame; it takes
// on/off/toggle for the label relay1 or relay2 (no label: relay1).
type relay struct {
	state [2]bool
	n     int
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (r *relay) hello() [][]byte {
	b, _ := json.Marshal([]map[string]any{
		{"label": "relay1", "value": onOff(r.state[0])},
		{"label": "relay2", "value": onOff(r.state[1])},
	})
	return [][]byte{b}
}

func (r *relay) tick() [][]byte {
	// Relays report on change; every 10 ticks they repeat their state as a heartbeat.
	r.n++
	if r.n%10 == 0 {
		return r.hello()
	}
	return nil
}

func (r *relay) receive(f []byte) ([][]byte, string) {
	c := wire.ParseCommand(f)
	i := 0
	switch c.Label {
	case "", "relay1":
	case "relay2":
		i = 1
	default:
		return nil, fmt.Sprintf("no relay %q", c.Label)
	}
	switch gateway.CommandKey(c.Value) {
	case "on":
		r.state[i] = true
	case "off":
		r.state[i] = false
	case "toggle":
		r.state[i] = !r.state[i]
	default:
		return nil, fmt.Sprintf("unknown relay command %q", f)
	}
	return [][]byte{frame(fmt.Sprintf("relay%d", i+1), onOff(r.state[i]))}, ""
}
