package mqttbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/esp32gw/esp32gw/adapters/mqttbridge/hadiscovery"
	"github.com/esp32gw/esp32gw/gateway"
)

// localDev is the pump's view of one device: what it last published for it.
// Remote devices (imported from other gateways) are tracked only to be
// skipped: their owner publishes them.
type localDev struct {
	remote  bool
	meta    []byte            // last meta payload queued
	lastSeq map[string]uint64 // per label: seq of the newest value queued
	disc    hadiscovery.Device
	labelAt map[string]int    // index of each label in disc.Labels
	haPub   map[string][]byte // discovery configs queued, by topic
}

func newLocalDev(info gateway.DeviceInfo) *localDev {
	return &localDev{
		remote:  info.Remote,
		lastSeq: map[string]uint64{},
		disc:    hadiscovery.Device{ID: info.ID, Name: info.Name, Transport: info.Transport, Commands: info.Commands},
		labelAt: map[string]int{},
		haPub:   map[string][]byte{},
	}
}

// observe records v as label's latest value for discovery and reports
// whether the label is new or its shape changed. Labels without a value
// topic of their own (reservedLabel) get no entity.
func (d *localDev) observe(label string, v json.RawMessage) bool {
	if reservedLabel(label) {
		return false
	}
	sh := hadiscovery.ShapeOf(v)
	if i, ok := d.labelAt[label]; ok {
		if d.disc.Labels[i].Shape == sh {
			return false
		}
		d.disc.Labels[i].Shape = sh
		return true
	}
	d.labelAt[label] = len(d.disc.Labels)
	d.disc.Labels = append(d.disc.Labels, hadiscovery.Label{Name: label, Shape: sh})
	return true
}

// pump moves the hub's stream into the outbox until ctx ends or the hub
// shuts down. It is the only writer of values, statuses, metas and
// discovery, so their order in the outbox is the hub's order. When the hub
// drops it for falling behind, it resubscribes from the last seq it saw
// (the hub replays the gap, or sends a snapshot that triggers a full
// re-publish).
func (b *Bridge) pump(ctx context.Context) {
	devs := map[string]*localDev{}
	since := int64(-1)
	for {
		sub, first, err := b.hub.Subscribe(since, hubQueueLen)
		if err != nil {
			return // the hub is shutting down
		}
		for _, m := range first {
			b.pumpMessage(devs, m, true)
		}
		end := func() bool {
			for {
				select {
				case <-ctx.Done():
					sub.Close()
					return true
				case <-b.resync: // (re)connected: the broker may have lost every retained state
					b.republish(devs, true)
				case <-b.haOnline:
					b.republish(devs, true)
				case m := <-sub.C:
					b.pumpMessage(devs, m, false)
					if m.Kind == gateway.KindEvent {
						since = int64(m.Seq)
					}
				case <-sub.Done():
					// Take what was queued before the drop, then decide.
					for {
						select {
						case m := <-sub.C:
							b.pumpMessage(devs, m, false)
							if m.Kind == gateway.KindEvent {
								since = int64(m.Seq)
							}
							continue
						default:
						}
						break
					}
					if errors.Is(sub.Err(), gateway.ErrSlowConsumer) {
						b.log.Warn("mqtt: fell behind the hub; resubscribing", "since", since)
						return false
					}
					return true
				}
			}
		}()
		if end {
			return
		}
	}
}

// pumpMessage turns one hub message into outbox messages.
func (b *Bridge) pumpMessage(devs map[string]*localDev, m *gateway.Message, first bool) {
	switch m.Kind {
	case gateway.KindSnapshot:
		// A first snapshot means we know nothing yet (start, or a gap the
		// hub could not replay): re-publish everything. A later one says a
		// device was added or changed: refresh metas and discovery.
		b.republish(devs, first)
	case gateway.KindStatus:
		d := b.dev(devs, m.Device)
		if d == nil || d.remote {
			return
		}
		p := payloadOffline
		if m.Online {
			p = payloadOnline
		}
		b.out.push(&outMsg{topic: b.topics.status(m.Device), payload: []byte(p), qos: 1, retain: true, state: true})
	case gateway.KindEvent:
		d := b.dev(devs, m.Device)
		if d == nil || d.remote {
			return
		}
		if reservedLabel(m.Label) {
			return // PREFIX/dev/status|meta|set mean something else
		}
		retain := b.cfg.Retain
		if m.Seq < d.lastSeq[m.Label] {
			// Older than a value already queued (a re-publish overtook it):
			// deliver it, but do not let it become the retained state.
			retain = false
		} else {
			d.lastSeq[m.Label] = m.Seq
		}
		b.out.push(&outMsg{topic: b.topics.value(m.Device, m.Label), payload: m.Value, qos: b.qos, retain: retain})
		if b.cfg.HomeAssistant.Enabled && d.observe(m.Label, m.Value) {
			b.publishDiscovery(d, false)
		}
	}
}

// dev returns the pump's record of a device, creating it from the hub.
func (b *Bridge) dev(devs map[string]*localDev, id string) *localDev {
	if d, ok := devs[id]; ok {
		return d
	}
	if id == bridgeDevice {
		// PREFIX/bridge/state is the bridge's own; config validation
		// refuses the id, so only a device added some other way gets here.
		return nil
	}
	info, ok := b.hub.Device(id)
	if !ok {
		return nil
	}
	d := newLocalDev(info)
	devs[id] = d
	return d
}

// republish re-reads the hub. With all, it queues every local device's
// meta, status, last values and discovery (after a (re)connect, at start,
// after a gap, or when Home Assistant restarts); otherwise only what
// changed (metas and discovery of added or updated devices).
func (b *Bridge) republish(devs map[string]*localDev, all bool) {
	_, states := b.hub.Snapshot()
	present := map[string]bool{}
	for _, st := range states {
		present[st.ID] = true
		d := b.dev(devs, st.ID)
		if d == nil {
			continue
		}
		d.remote = st.Remote
		if d.remote {
			continue
		}
		d.disc.Name, d.disc.Transport, d.disc.Commands = st.Name, st.Transport, st.Commands
		meta, _ := json.Marshal(struct {
			Gateway   string   `json:"gateway"`
			Name      string   `json:"name"`
			Transport string   `json:"transport"`
			Commands  []string `json:"commands"`
		}{st.Gateway, st.Name, st.Transport, st.Commands})
		if all || !bytes.Equal(meta, d.meta) {
			d.meta = meta
			b.out.push(&outMsg{topic: b.topics.meta(st.ID), payload: meta, qos: 1, retain: true, state: true})
		}
		for _, l := range b.hub.Labels(st.ID) {
			lv, ok := st.Labels[l]
			if !ok {
				continue
			}
			d.observe(l, lv.Value)
			if all && b.cfg.Retain && !reservedLabel(l) && lv.Seq >= d.lastSeq[l] {
				// Restore the retained last value (a broker without
				// persistence lost it). Queued as state: it replaces an
				// older re-publish, never a reading.
				d.lastSeq[l] = lv.Seq
				b.out.push(&outMsg{topic: b.topics.value(st.ID, l), payload: lv.Value, qos: b.qos, retain: true, state: true})
			}
		}
		if all {
			p := payloadOffline
			if st.Online {
				p = payloadOnline
			}
			b.out.push(&outMsg{topic: b.topics.status(st.ID), payload: []byte(p), qos: 1, retain: true, state: true})
		}
		if b.cfg.HomeAssistant.Enabled {
			b.publishDiscovery(d, all)
		}
	}
	for id := range devs {
		if !present[id] {
			delete(devs, id)
		}
	}
}

// publishDiscovery queues d's discovery configs: the changed ones, or all
// of them with all; configs that no longer apply (a label changed kind) are
// cleared with an empty retained message.
func (b *Bridge) publishDiscovery(d *localDev, all bool) {
	want := hadiscovery.Configs(b.ha, d.disc)
	for topic := range d.haPub {
		if _, ok := want[topic]; !ok {
			b.out.push(&outMsg{topic: topic, payload: []byte{}, qos: 1, retain: true, state: true})
			delete(d.haPub, topic)
		}
	}
	for topic, cfg := range want {
		if all || !bytes.Equal(d.haPub[topic], cfg) {
			d.haPub[topic] = cfg
			b.out.push(&outMsg{topic: topic, payload: cfg, qos: 1, retain: true, state: true})
		}
	}
}
