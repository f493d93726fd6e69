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
	// The latest info (board attributes) while the meta has not come;
	// its payload's size is in pendingBytes.
	info      map[string]json.RawMessage
	infoBytes int
	hasInfo   bool
}

// importRemote applies one meta, status, value or info message of another
// gateway's device to the hub. Retained messages arrive in any order, so
// status, values and info wait for the meta, and values wait for the device
// to be online (the hub takes readings only from a live link). The info (the
// board's attributes) is the device's whatever its status, like a local
// board's.
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
		if r.hasInfo {
			c.setInfo(dev, r.info)
			c.pendingBytes -= r.infoBytes
			r.pendingBytes -= r.infoBytes
			r.info, r.infoBytes, r.hasInfo = nil, 0, false
		}
	case tkStatus:
		r.online = strings.TrimSpace(string(payload)) == payloadOnline
		if !r.online && r.link != nil {
			r.link.Detach("offline on gateway " + r.gateway)
			r.link = nil
		}
	case tkInfo:
		info, ok := parseInfo(payload)
		if !ok {
			c.m.inboundRejected.Add(1)
			c.log.Debug("mqtt: ignored info that is not a JSON object", "device", dev, "bytes", len(payload))
			return
		}
		if r.added {
			c.setInfo(dev, info)
			break
		}
		grow := len(payload) - r.infoBytes
		if c.pendingBytes+grow > maxPendingBytes {
			c.m.inboundDropped.Add(1)
			return
		}
		r.info, r.hasInfo = info, true
		r.infoBytes += grow
		r.pendingBytes += grow
		c.pendingBytes += grow
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

// setInfo gives an imported device its gateway's info (nil: none). An
// info over this gateway's limits (too many attributes, a value too long,
// no room left in the hub's last values) is rejected whole and counted;
// the device keeps what it had.
func (c *cluster) setInfo(dev string, info map[string]json.RawMessage) {
	if err := c.hub.SetRemoteInfo(dev, info); err != nil {
		c.m.inboundRejected.Add(1)
		c.log.Debug("mqtt: ignored info", "device", dev, "err", err)
	}
}

// parseInfo reads an info payload: a JSON object of attributes, or empty
// (the retained info cleared: no attributes, nil). Anything else is not ok.
func parseInfo(payload []byte) (map[string]json.RawMessage, bool) {
	if len(payload) == 0 {
		return nil, true
	}
	var info map[string]json.RawMessage
	if err := json.Unmarshal(payload, &info); err != nil || info == nil {
		return nil, false // not JSON, or not an object (null included)
	}
	return info, true
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
