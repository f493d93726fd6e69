package mqttbridge

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/esp32gw/esp32gw/gateway"
)

// remoteDev is a device another gateway publishes, as run sees it.
type remoteDev struct {
	created      time.Time // evicted if no meta came within remoteMetaWait
	pendingBytes int       // size of values
	gateway      string
	added        bool // meta seen and the device is in the hub
	online       bool
	link         gateway.Link
	values       map[string]json.RawMessage // latest values not yet in the hub
	order        []string
}

// importRemote applies one meta, status or value message of another
// gateway's device to the hub. Retained messages arrive in any order, so
// status and values wait for the meta, and values wait for the device to be
// online (the hub takes readings only from a live link).
func (c *cluster) importRemote(kind topicKind, dev, label string, payload []byte) {
	if info, ok := c.hub.Device(dev); ok && !info.Remote {
		return // ours: we published it
	}
	r := c.remotes[dev]
	if r == nil {
		if len(payload) == 0 || len(c.remotes) >= maxRemoteDevices {
			return
		}
		r = &remoteDev{created: time.Now(), values: map[string]json.RawMessage{}}
		c.remotes[dev] = r
	}
	switch kind {
	case tkMeta:
		if len(payload) == 0 {
			// Its gateway withdrew it (retained meta cleared).
			if r.link != nil {
				r.link.Detach("withdrawn by gateway " + r.gateway)
			}
			if r.added {
				c.hub.RemoveDevice(dev)
				c.m.remoteDevices.Add(-1)
			}
			c.pendingBytes -= r.pendingBytes
			delete(c.remotes, dev)
			return
		}
		var meta struct {
			Gateway   string   `json:"gateway"`
			Name      string   `json:"name"`
			Transport string   `json:"transport"`
			Commands  []string `json:"commands"`
		}
		if err := json.Unmarshal(payload, &meta); err != nil || !gateway.ValidID(meta.Gateway) {
			// The gateway name reaches /metrics labels and browsers: it
			// must be an id like ours.
			c.m.inboundRejected.Add(1)
			c.log.Debug("mqtt: ignored bad meta", "device", dev, "gateway", meta.Gateway, "err", err)
			return
		}
		if meta.Gateway == c.gw {
			// Our own gateway published it once (a device since removed
			// from our config): never re-import our own devices.
			if !r.added {
				c.pendingBytes -= r.pendingBytes
				delete(c.remotes, dev)
			}
			return
		}
		err := c.hub.AddDevice(gateway.DeviceInfo{ID: dev, Name: meta.Name, Gateway: meta.Gateway, Transport: meta.Transport, Commands: meta.Commands, Remote: true})
		if err != nil {
			c.log.Warn("mqtt: cannot import device from another gateway", "device", dev, "gateway", meta.Gateway, "err", err)
			c.pendingBytes -= r.pendingBytes
			delete(c.remotes, dev)
			return
		}
		if !r.added {
			c.m.remoteDevices.Add(1)
			c.log.Info("mqtt: imported device", "device", dev, "gateway", meta.Gateway)
		}
		r.added, r.gateway = true, meta.Gateway
	case tkStatus:
		r.online = strings.TrimSpace(string(payload)) == payloadOnline
		if !r.online && r.link != nil {
			r.link.Detach("offline on gateway " + r.gateway)
			r.link = nil
		}
	case tkValue:
		if reservedLabel(label) {
			return
		}
		v := json.RawMessage(payload)
		if !json.Valid(v) {
			v, _ = json.Marshal(string(payload))
		}
		if r.link != nil {
			r.link.Publish(gateway.Reading{Label: label, Value: v})
			return
		}
		old, had := r.values[label]
		if c.pendingBytes-len(old)+len(v) > maxPendingBytes {
			c.m.inboundDropped.Add(1)
			return
		}
		if !had {
			if len(r.order) >= gateway.MaxLabelsPerDevice {
				return
			}
			r.order = append(r.order, label)
		}
		r.values[label] = v
		r.pendingBytes += len(v) - len(old)
		c.pendingBytes += len(v) - len(old)
	}
	if r.added && r.online && r.link == nil {
		link, err := c.hub.Attach(dev, c.send(dev, r.gateway))
		if err != nil {
			c.log.Debug("mqtt: cannot attach remote device", "device", dev, "err", err)
			return
		}
		r.link = link
		for _, l := range r.order {
			link.Publish(gateway.Reading{Label: l, Value: r.values[l]})
		}
		clear(r.values)
		r.order = r.order[:0]
		c.pendingBytes -= r.pendingBytes
		r.pendingBytes = 0
	}
}

// evictPending forgets remote entries that have waited longer than
// remoteMetaWait for their meta (statuses and values for a device no
// gateway announces: stale retained junk, or hostile input).
func (c *cluster) evictPending() {
	now := time.Now()
	for id, r := range c.remotes {
		if !r.added && now.Sub(r.created) > c.metaWait {
			c.pendingBytes -= r.pendingBytes
			delete(c.remotes, id)
			c.log.Debug("mqtt: forgot a device whose meta never came", "device", id)
		}
	}
	c.countPending()
}

func (c *cluster) countPending() {
	n := 0
	for _, r := range c.remotes {
		if !r.added {
			n++
		}
	}
	c.m.remotePending.Store(int64(n))
}

// validLabel reports whether a label from a topic may become a reading:
// what the hub accepts from boards, minus the reserved topic names.
func validLabel(l string) bool {
	if l == "" || len(l) > gateway.MaxLabelLen || !utf8.ValidString(l) || reservedLabel(l) {
		return false
	}
	for _, c := range l {
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}
