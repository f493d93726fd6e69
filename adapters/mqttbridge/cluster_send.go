package mqttbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/gateway"
)

// waiters are commands sent to other gateways, waiting for their result
// topic. MQTT 3.1.1 has no correlation ids, so a result goes to the oldest
// waiter on its topic.
type waiters struct {
	mu sync.Mutex
	m  map[string][]*waiter
}

type waiter struct {
	topic string
	ch    chan []byte // capacity 1
}

func (w *waiters) add(topic string) *waiter {
	wt := &waiter{topic: topic, ch: make(chan []byte, 1)}
	w.mu.Lock()
	w.m[topic] = append(w.m[topic], wt)
	w.mu.Unlock()
	return wt
}

func (w *waiters) remove(wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[wt.topic]
	for i, x := range list {
		if x == wt {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.m, wt.topic)
	} else {
		w.m[wt.topic] = list
	}
}

// deliver hands payload to the oldest waiter on topic; it never blocks.
func (w *waiters) deliver(topic string, payload []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[topic]
	if len(list) == 0 {
		return
	}
	wt := list[0]
	if len(list) == 1 {
		delete(w.m, topic)
	} else {
		w.m[topic] = list[1:]
	}
	wt.ch <- append([]byte(nil), payload...)
}

// send is the SendFunc of a device on another gateway: the command
// goes to its set topic and the answer comes from its result topic.
func (c *cluster) send(dev, gw string) gateway.SendFunc {
	return func(ctx context.Context, cmd gateway.Command) error {
		if !c.gate.isUp() {
			return fmt.Errorf("%w: no MQTT broker connection to reach gateway %s", gateway.ErrOffline, gw)
		}
		rt := c.topics.result(dev, cmd.Label)
		w := c.waiters.add(rt)
		defer c.waiters.remove(w)
		// QoS 0, and never sent once nobody waits: a command must not reach
		// the board after its answer (paho would resend a QoS 1 publish
		// after a reconnect, tens of seconds later: a ghost toggle).
		c.out.pushFront(&outMsg{topic: c.topics.set(dev, cmd.Label), payload: append([]byte(nil), cmd.Value...), qos: 0,
			expires: time.Now().Add(c.resultTimeout)})
		t := time.NewTimer(c.resultTimeout)
		defer t.Stop()
		select {
		case p := <-w.ch:
			var res struct {
				OK    bool         `json:"ok"`
				Error string       `json:"error"`
				Code  gateway.Code `json:"code"`
			}
			if err := json.Unmarshal(p, &res); err != nil {
				return fmt.Errorf("gateway %s answered %s with a malformed result: %w", gw, rt, err)
			}
			if res.OK {
				return nil
			}
			return remoteError(gw, res.Error, res.Code)
		case <-t.C:
			return fmt.Errorf("%w: gateway %s sent no result on %s within %v", gateway.ErrTimeout, gw, rt, c.resultTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// remoteError is another gateway's answer as an error here: its code gives
// the core's sentinel, so browsers and HTTP clients see the same status and
// sentence as for a local device; its text stays in the error for logs.
func remoteError(gw, text string, code gateway.Code) error {
	if s := gateway.Sentinel(code); s != nil {
		return fmt.Errorf("gateway %s: %s: %w", gw, text, s)
	}
	return fmt.Errorf("gateway %s: %s", gw, text)
}
