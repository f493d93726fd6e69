package mqttbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"

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

	infoHash uint64  // of the last info payload queued (infoSent)
	infoSent bool    // an info payload was queued
	fw       boardFW // the attributes the update entity shows
	upd      []byte  // the last update entity state queued
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

// pump mirrors the hub to the broker: it turns the hub's stream into
// outbox messages (values, statuses, metas and, with Home Assistant
// discovery, its configs). It runs on one goroutine, run, which Bridge.Run
// starts and waits for; devs is run's own. resync and haOnline are
// signals of one (the connection came up; Home Assistant restarted) that
// trigger a full re-publish.
type pump struct {
	hub    *gateway.Hub
	out    *outbox
	topics topics
	ha     *hadiscovery.Config // nil: discovery off
	retain bool                // mqtt.retain, for value topics
	qos    byte                // mqtt.qos, for value topics
	log    *slog.Logger

	// updates is the firmware catalogue, nil when not wired; only used
	// with discovery (ha).
	updates Updates

	resync, haOnline chan struct{} // capacity 1 each
	firmware         chan struct{} // capacity 1: the catalogue changed (FirmwareChanged)

	devs     map[string]*localDev
	infoSeed maphash.Seed // for localDev.infoHash
}

// run moves the hub's stream into the outbox until ctx ends or the hub
// shuts down. It is the only writer of values, statuses, metas and
// discovery, so their order in the outbox is the hub's order. When the hub
// drops it for falling behind, it resubscribes from the last seq it saw
// (the hub replays the gap, or sends a snapshot that triggers a full
// re-publish).
func (p *pump) run(ctx context.Context) {
	p.devs = map[string]*localDev{}
	p.infoSeed = maphash.MakeSeed()
	since := int64(-1)
	for {
		sub, first, err := p.hub.Subscribe(since, hubQueueLen)
		if err != nil {
			return // the hub is shutting down
		}
		for _, m := range first {
			p.message(m, true)
		}
		if since >= 0 {
			// The hub replays events only: catch up with attribute (info)
			// and metadata changes made while we were behind.
			p.republish(false)
		}
		end := func() bool {
			for {
				select {
				case <-ctx.Done():
					sub.Close()
					return true
				case <-p.resync: // (re)connected: the broker may have lost every retained state
					p.republish(true)
				case <-p.haOnline:
					p.republish(true)
				case <-p.firmware:
					p.refreshUpdates()
				case m := <-sub.C:
					p.message(m, false)
					if m.Kind == gateway.KindEvent {
						since = int64(m.Seq)
					}
				case <-sub.Done():
					// Take what was queued before the drop, then decide.
					for {
						select {
						case m := <-sub.C:
							p.message(m, false)
							if m.Kind == gateway.KindEvent {
								since = int64(m.Seq)
							}
							continue
						default:
						}
						break
					}
					if errors.Is(sub.Err(), gateway.ErrSlowConsumer) {
						p.log.Warn("mqtt: fell behind the hub; resubscribing", "since", since)
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

// message turns one hub message into outbox messages.
func (p *pump) message(m *gateway.Message, first bool) {
	switch m.Kind {
	case gateway.KindSnapshot:
		// A first snapshot means we know nothing yet (start, or a gap the
		// hub could not replay): re-publish everything. A later one says a
		// device was added or changed: refresh metas and discovery.
		p.republish(first)
	case gateway.KindStatus:
		d := p.dev(m.Device)
		if d == nil || d.remote {
			return
		}
		status := payloadOffline
		if m.Online {
			status = payloadOnline
		}
		p.out.push(&outMsg{topic: p.topics.status(m.Device), payload: []byte(status), qos: 1, retain: true, state: true})
	case gateway.KindEvent:
		d := p.dev(m.Device)
		if d == nil || d.remote {
			return
		}
		if reservedLabel(m.Label) {
			return // PREFIX/dev/status|meta|set mean something else
		}
		retain := p.retain
		if m.Seq < d.lastSeq[m.Label] {
			// Older than a value already queued (a re-publish overtook it):
			// deliver it, but do not let it become the retained state.
			retain = false
		} else {
			d.lastSeq[m.Label] = m.Seq
		}
		p.out.push(&outMsg{topic: p.topics.value(m.Device, m.Label), payload: m.Value, qos: p.qos, retain: retain})
		if p.ha != nil && d.observe(m.Label, m.Value) {
			p.publishDiscovery(d, false)
		}
	case gateway.KindInfo:
		d := p.dev(m.Device)
		if d == nil || d.remote {
			return // a remote device's info is its own gateway's to publish
		}
		if info, ok := p.hub.Device(m.Device); !ok || info.Remote {
			// Our record is stale: a local device was removed and another
			// gateway's device of that id imported since (the snapshot
			// that tells us comes later). Never publish imported info as
			// our own. Info messages are rare: asking the hub is cheap.
			return
		}
		p.info(d, m.Device, m.Info, false)
	}
}

// info queues a device's attributes on its info topic (when they changed,
// or always with all) and, with discovery, the attribute entities and the
// update entity's state. An empty info (a board that reported no
// attributes) publishes nothing.
func (p *pump) info(d *localDev, id string, info map[string]json.RawMessage, all bool) {
	if len(info) == 0 {
		return
	}
	payload := infoPayload(info)
	h := maphash.Bytes(p.infoSeed, payload)
	if all || !d.infoSent || h != d.infoHash {
		d.infoHash, d.infoSent = h, true
		p.out.push(&outMsg{topic: p.topics.info(id), payload: payload, qos: 1, retain: true, state: true})
	}
	d.fw.take(info)
	if p.ha == nil {
		return
	}
	_, rssi := info["rssi"]
	_, uptime := info["uptime"]
	_, fw := info["fw"]
	if rssi != d.disc.RSSI || uptime != d.disc.Uptime || fw != d.disc.Firmware {
		d.disc.RSSI, d.disc.Uptime, d.disc.Firmware = rssi, uptime, fw
		p.publishDiscovery(d, false)
	}
	p.publishUpdate(d, id, all)
}

// publishUpdate queues the update entity's state of a board that reports
// $fw, when it changed (or always with all).
func (p *pump) publishUpdate(d *localDev, id string, all bool) {
	if p.ha == nil || !d.disc.Firmware {
		return
	}
	st := d.fw.state(p.updates, d.disc.Name).JSON()
	if all || !bytes.Equal(st, d.upd) {
		d.upd = st
		p.out.push(&outMsg{topic: p.topics.updateState(id), payload: st, qos: 1, retain: true, state: true})
	}
}

// refreshUpdates re-publishes the update entities whose latest version
// changed with the firmware catalogue.
func (p *pump) refreshUpdates() {
	for id, d := range p.devs {
		if !d.remote {
			p.publishUpdate(d, id, false)
		}
	}
}

// infoPayload is a device's attributes as one JSON object, keys sorted
// (the hub's own encoding: the same info always gives the same bytes).
func infoPayload(info map[string]json.RawMessage) []byte {
	keys := slices.Sorted(maps.Keys(info))
	n := 2
	for k, v := range info {
		n += len(k) + len(v) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kj, _ := json.Marshal(k) // a string always encodes
		b = append(b, kj...)
		b = append(b, ':')
		b = append(b, info[k]...)
	}
	return append(b, '}')
}

// dev returns the pump's record of a device, creating it from the hub.
func (p *pump) dev(id string) *localDev {
	if d, ok := p.devs[id]; ok {
		return d
	}
	if id == bridgeDevice {
		// PREFIX/bridge/state is the bridge's own; config validation
		// refuses the id, so only a device added some other way gets here.
		return nil
	}
	info, ok := p.hub.Device(id)
	if !ok {
		return nil
	}
	d := newLocalDev(info)
	d.disc.Installable = p.updates != nil
	p.devs[id] = d
	return d
}

// republish re-reads the hub. With all, it queues every local device's
// meta, status, last values and discovery (after a (re)connect, at start,
// after a gap, or when Home Assistant restarts); otherwise only what
// changed (metas and discovery of added or updated devices).
func (p *pump) republish(all bool) {
	_, states := p.hub.Snapshot()
	present := map[string]bool{}
	for _, st := range states {
		present[st.ID] = true
		d := p.dev(st.ID)
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
			p.out.push(&outMsg{topic: p.topics.meta(st.ID), payload: meta, qos: 1, retain: true, state: true})
		}
		for _, l := range p.hub.Labels(st.ID) {
			lv, ok := st.Labels[l]
			if !ok {
				continue
			}
			d.observe(l, lv.Value)
			// A value restored from the history at start was published by
			// the run before, and may be older than what that run
			// published last (the store lags by up to commit_interval): it
			// is never published again, so the broker never goes back.
			if all && p.retain && !reservedLabel(l) && !lv.Restored && lv.Seq >= d.lastSeq[l] {
				// Restore the retained last value (a broker without
				// persistence lost it). Queued as state: it replaces an
				// older re-publish, never a reading.
				d.lastSeq[l] = lv.Seq
				p.out.push(&outMsg{topic: p.topics.value(st.ID, l), payload: lv.Value, qos: p.qos, retain: true, state: true})
			}
		}
		if all {
			status := payloadOffline
			if st.Online {
				status = payloadOnline
			}
			p.out.push(&outMsg{topic: p.topics.status(st.ID), payload: []byte(status), qos: 1, retain: true, state: true})
		}
		// Attributes after the status, so the attribute entities'
		// discovery below already knows them.
		p.info(d, st.ID, st.Info, all)
		if p.ha != nil {
			p.publishDiscovery(d, all)
		}
	}
	for id := range p.devs {
		if !present[id] {
			delete(p.devs, id)
		}
	}
}

// publishDiscovery queues d's discovery configs: the changed ones, or all
// of them with all; configs that no longer apply (a label changed kind) are
// cleared with an empty retained message.
func (p *pump) publishDiscovery(d *localDev, all bool) {
	want := hadiscovery.Configs(*p.ha, d.disc)
	for topic := range d.haPub {
		if _, ok := want[topic]; !ok {
			p.out.push(&outMsg{topic: topic, payload: []byte{}, qos: 1, retain: true, state: true})
			delete(d.haPub, topic)
		}
	}
	for topic, cfg := range want {
		if all || !bytes.Equal(d.haPub[topic], cfg) {
			d.haPub[topic] = cfg
			p.out.push(&outMsg{topic: topic, payload: cfg, qos: 1, retain: true, state: true})
		}
	}
}
