package mqttbridge

import (
	"time"
)

// Cluster liveness. A gateway that dies without a clean goodbye leaves its
// devices' retained statuses "online"; the broker publishes its Will,
// "offline", on the shared PREFIX/bridge/state. Every other gateway then
// re-asserts "online" there and pings (PREFIX/bridge/ping); the gateways
// whose imported devices are online must answer on
// PREFIX/bridge/<id>/alive within probeWait, or their devices are marked
// offline. The same check runs joinSettle after every (re)connect.

// probe is a liveness check of other gateways in progress (run's).
type probe struct {
	timer    *time.Timer
	suspects map[string]bool // gateways with online devices; deleted when heard from
	cleared  map[string]bool // gateways heard from since the ping
}

// startProbe re-asserts PREFIX/bridge/state (another gateway's Will or
// clean shutdown set it offline; it means "at least one gateway on this
// prefix is up") and, unless a check is already running, pings the
// gateways whose imported devices are online.
func (c *cluster) startProbe() {
	p := &c.probe
	c.out.pushFront(&outMsg{topic: c.topics.bridgeState(), payload: []byte(payloadOnline), qos: 1, retain: true, state: true})
	if p.timer != nil {
		// A check is running: devices imported since (retained statuses
		// arrive in any order) make their gateways suspects too, unless
		// those already answered the ping.
		for _, r := range c.remotes {
			if r.link != nil && !p.cleared[r.gateway] {
				p.suspects[r.gateway] = true
			}
		}
		return
	}
	suspects := map[string]bool{}
	for _, r := range c.remotes {
		if r.link != nil {
			suspects[r.gateway] = true
		}
	}
	if len(suspects) == 0 {
		return
	}
	p.suspects, p.cleared = suspects, map[string]bool{}
	p.timer = time.NewTimer(c.probeWait)
	// Queued as state: a full backlog evicts readings, never the ping (a
	// lost ping would make every suspect look dead).
	c.out.pushFront(&outMsg{topic: c.topics.ping(), payload: gatewayPayload(c.gw), qos: 1, state: true})
	c.log.Debug("mqtt: another gateway went offline; checking which", "gateways", len(suspects))
}

// endProbe marks offline the devices of every suspect that did not answer.
func (c *cluster) endProbe() {
	p := &c.probe
	for gw := range p.suspects {
		n := 0
		for _, r := range c.remotes {
			if r.gateway == gw && r.link != nil {
				r.link.Detach("gateway " + gw + " stopped answering")
				r.link = nil
				r.online = false // until its gateway publishes online again
				n++
			}
		}
		if n > 0 {
			c.log.Warn("mqtt: gateway stopped answering; its devices are offline", "gateway", gw, "devices", n)
		}
	}
	p.cancel()
}

func (p *probe) cancel() {
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timer, p.suspects, p.cleared = nil, nil, nil
}

func (p *probe) heard(gw string) {
	if p.timer != nil {
		delete(p.suspects, gw)
		p.cleared[gw] = true
	}
}
