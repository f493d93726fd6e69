package mqttbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/gateway"
)

// Command tunables; each has its unit and its reason.
const (
	// setQueueLen bounds commands from set topics awaiting run; beyond it a
	// command is answered "gateway busy" at once.
	setQueueLen = 256
	// commandQueueLen bounds each device's commands waiting for its worker;
	// beyond it a command is answered "gateway busy".
	commandQueueLen = 32
	// commandBudget is how long an MQTT command may take from its arrival
	// to its answer: one that waited longer is not run ("gateway busy: the
	// command waited too long"), one running is cut off then. It keeps the
	// contract's "command answer within 2 s".
	commandBudget = gateway.CommandTimeout
	// minCommandTime is the least of its budget a command must have left
	// to be sent to the board at all; with less it is answered busy.
	minCommandTime = 100 * time.Millisecond
	// maxSetPayload bounds an MQTT command value, as the browser message
	// limit bounds a browser command.
	maxSetPayload = 16 << 10
	// duplicateWindow: a command with the same payload on the same set
	// topic as one that arrived less than this before is a duplicate (a
	// publisher's QoS 1 retransmission, or a retained-and-live double) and
	// is dropped, counted, and not answered again, so "toggle" never
	// toggles twice.
	duplicateWindow = time.Second
	// maxRecentSets bounds the commands remembered for duplicate detection;
	// beyond it, those older than duplicateWindow are forgotten.
	maxRecentSets = 1024
)

// commander runs the commands that arrive on this gateway's set topics and
// answers each on its result topic. paho's handler calls take, which never
// blocks; run, started and waited for by Bridge.Run, owns the per-device
// workers it starts and waits for them before it returns.
type commander struct {
	hub       *gateway.Hub
	out       *outbox
	topics    topics
	m         *metrics
	log       *slog.Logger
	clustered bool // set topics of devices we do not know may be another gateway's

	budget time.Duration // commandBudget; tests may lower it before Run
	sets   chan setMsg   // from take to run
}

// setMsg is one command from a set topic, with its arrival time: a command
// that waited longer than the command budget is answered, never run.
type setMsg struct {
	dev, label string
	payload    []byte
	at         time.Time
}

// Errors of the bridge's own command queueing. They unwrap to the core's
// sentinels so HTTP and other gateways map them as usual.
var (
	errBusy          = &gateway.UserError{Text: "gateway busy", Err: gateway.ErrRateLimited}
	errWaitedTooLong = &gateway.UserError{Text: "gateway busy: the command waited too long", Err: gateway.ErrTimeout}
)

// take checks a set message and queues it for run, without blocking;
// when that queue is full the command is answered "gateway busy" at once.
func (c *commander) take(dev, label string, m mqtt.Message) {
	if m.Retained() {
		// A retained command would fire on every restart ("ghost
		// switching"); the contract says ignore it.
		c.m.retainedIgnored.Add(1)
		c.log.Debug("mqtt: ignored retained command", "device", dev, "label", label)
		return
	}
	info, known := c.hub.Device(dev)
	if known && info.Remote {
		return // its own gateway answers
	}
	if !known && c.clustered {
		return // maybe another gateway's device we have not imported yet
	}
	select {
	case c.sets <- setMsg{dev: dev, label: label, payload: m.Payload(), at: time.Now()}:
	default:
		c.m.inboundDropped.Add(1)
		c.answer(dev, label, errBusy)
	}
}

// run runs the set messages until ctx ends. Each device has its own
// worker while it has commands waiting, so its commands keep their order
// and a slow board delays only its own; a command older than cmdBudget is
// answered "gateway busy: the command waited too long" without running.
// It waits for the workers it started before it returns.
func (c *commander) run(ctx context.Context) {
	var (
		mu      sync.Mutex
		queues  = map[string]chan setMsg{} // devices with a running worker
		workers sync.WaitGroup
		recent  = recentSets{}
	)
	defer workers.Wait()
	worker := func(dev string, q chan setMsg) {
		for {
			mu.Lock()
			select {
			case cmd := <-q:
				mu.Unlock()
				c.runOne(ctx, cmd)
			default:
				delete(queues, dev)
				mu.Unlock()
				return
			}
		}
	}
	for {
		var cmd setMsg
		select {
		case <-ctx.Done():
			return
		case cmd = <-c.sets:
		}
		if len(cmd.payload) > maxSetPayload {
			c.answer(cmd.dev, cmd.label, fmt.Errorf("%w: command over %d bytes", gateway.ErrBadCommand, maxSetPayload))
			continue
		}
		if _, known := c.hub.Device(cmd.dev); !known {
			c.answer(cmd.dev, cmd.label, fmt.Errorf("device %s: %w", cmd.dev, gateway.ErrUnknownDevice))
			continue
		}
		if recent.duplicate(cmd) {
			c.m.duplicateCommands.Add(1)
			c.log.Debug("mqtt: duplicate command dropped", "device", cmd.dev, "label", cmd.label)
			continue
		}
		// Known local devices only: the workers are bounded by the config.
		mu.Lock()
		q, running := queues[cmd.dev]
		if !running {
			q = make(chan setMsg, commandQueueLen)
			queues[cmd.dev] = q
		}
		select {
		case q <- cmd:
		default:
			c.answer(cmd.dev, cmd.label, fmt.Errorf("device %s: %w (MQTT command queue full)", cmd.dev, errBusy))
		}
		mu.Unlock()
		if !running {
			workers.Go(func() { worker(cmd.dev, q) })
		}
	}
}

// recentSets remembers the last command on each set topic (device and
// label) for duplicate detection. Used by run's goroutine only.
type recentSets map[[2]string]setMsg

// duplicate reports whether cmd repeats the last command on its topic
// within duplicateWindow, and remembers cmd otherwise.
func (r recentSets) duplicate(cmd setMsg) bool {
	k := [2]string{cmd.dev, cmd.label}
	if last, ok := r[k]; ok && cmd.at.Sub(last.at) < duplicateWindow && bytes.Equal(last.payload, cmd.payload) {
		return true
	}
	if len(r) >= maxRecentSets {
		for k, m := range r {
			if cmd.at.Sub(m.at) >= duplicateWindow {
				delete(r, k)
			}
		}
		if len(r) >= maxRecentSets {
			clear(r)
		}
	}
	r[k] = cmd
	return false
}

// runOne runs one MQTT command within what is left of its budget and
// answers it on its result topic.
func (c *commander) runOne(ctx context.Context, cmd setMsg) {
	if ctx.Err() != nil {
		return
	}
	deadline := cmd.at.Add(c.budget)
	if time.Until(deadline) < minCommandTime {
		c.log.Debug("mqtt command waited too long", "device", cmd.dev, "label", cmd.label)
		c.answer(cmd.dev, cmd.label, errWaitedTooLong)
		return
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err := c.hub.Command(cctx, cmd.dev, gateway.Command{Label: cmd.label, Value: commandValue(cmd.payload)})
	if err != nil {
		c.log.Debug("mqtt command failed", "device", cmd.dev, "label", cmd.label, "err", err)
	}
	c.answer(cmd.dev, cmd.label, err)
}

// answer publishes a command's result (never retained).
func (c *commander) answer(dev, label string, err error) {
	if err == nil {
		c.m.commandsOK.Add(1)
	} else {
		c.m.commandsErr.Add(1)
	}
	c.out.pushFront(&outMsg{topic: c.topics.result(dev, label), payload: resultPayload(dev, err), qos: 1})
}

// commandValue turns a set payload into the command value: a valid JSON
// number, string, bool or object is taken as that value; anything else
// (bare words like toggle, arrays, null, invalid UTF-8) as text, without
// surrounding whitespace (so `echo toggle | mosquitto_pub -s` works).
func commandValue(payload []byte) json.RawMessage {
	t := bytes.TrimSpace(payload)
	if len(t) > 0 && json.Valid(t) {
		switch t[0] {
		case '"', '{', 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			var buf bytes.Buffer
			if json.Compact(&buf, t) == nil {
				return buf.Bytes()
			}
		}
	}
	s := string(t)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	v, _ := json.Marshal(s) // a string always encodes
	return v
}

// resultPayload is the answer to one MQTT command for device: the same
// sentence as on /ws and HTTP, and the error's stable code.
func resultPayload(device string, err error) []byte {
	if err == nil {
		return []byte(`{"ok":true}`)
	}
	b, _ := json.Marshal(struct {
		OK    bool         `json:"ok"`
		Error string       `json:"error"`
		Code  gateway.Code `json:"code"`
	}{false, gateway.Describe(device, err), gateway.CodeOf(err)})
	return b
}
