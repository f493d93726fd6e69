package mqttbridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/esp32gw/esp32gw/gateway"
)

// Topic names under the configured prefix (DESIGN.md, "MQTT topics").
const (
	bridgeDevice = "bridge" // PREFIX/bridge/state
	topicState   = "state"
	topicStatus  = "status"
	topicMeta    = "meta"
	topicSet     = "set"
	topicResult  = "result"
	// Cluster liveness (additions to the contract's topics):
	// PREFIX/bridge/ping asks every gateway on the prefix to answer on
	// PREFIX/bridge/<gateway_id>/alive.
	topicPing  = "ping"
	topicAlive = "alive"

	payloadOnline  = "online"
	payloadOffline = "offline"
)

// maxSetPayload bounds an MQTT command value, as the browser message limit
// bounds a browser command.
const maxSetPayload = 16 << 10

// reservedLabel reports whether a label cannot get its own value topic
// because PREFIX/<device>/<label> would be a topic the contract already
// gives another meaning (availability, metadata, commands).
func reservedLabel(label string) bool {
	return label == topicStatus || label == topicMeta || label == topicSet
}

func (b *Bridge) bridgeTopic() string { return b.prefix + "/" + bridgeDevice + "/" + topicState }
func (b *Bridge) pingTopic() string   { return b.prefix + "/" + bridgeDevice + "/" + topicPing }
func (b *Bridge) aliveTopic(gw string) string {
	return b.prefix + "/" + bridgeDevice + "/" + gw + "/" + topicAlive
}

// aliveGateway returns the gateway id of a PREFIX/bridge/<id>/alive topic.
func (b *Bridge) aliveGateway(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, b.prefix+"/"+bridgeDevice+"/")
	if !ok {
		return "", false
	}
	gw, ok := strings.CutSuffix(rest, "/"+topicAlive)
	if !ok || strings.Contains(gw, "/") {
		return "", false
	}
	return gw, true
}

func (b *Bridge) statusTopic(dev string) string {
	return b.prefix + "/" + dev + "/" + topicStatus
}
func (b *Bridge) metaTopic(dev string) string { return b.prefix + "/" + dev + "/" + topicMeta }
func (b *Bridge) valueTopic(dev, label string) string {
	return b.prefix + "/" + dev + "/" + label
}

// setTopic is where a command for label goes; an empty label is an empty
// topic level (PREFIX/dev/set/), which PREFIX/+/set/+ still matches.
func (b *Bridge) setTopic(dev, label string) string {
	return b.prefix + "/" + dev + "/" + topicSet + "/" + label
}
func (b *Bridge) resultTopic(dev, label string) string {
	return b.setTopic(dev, label) + "/" + topicResult
}

// topicKind is what an incoming topic under the prefix means.
type topicKind int

const (
	tkOther  topicKind = iota
	tkSet              // PREFIX/dev/set/label
	tkResult           // PREFIX/dev/set/label/result
	tkMeta             // PREFIX/dev/meta
	tkStatus           // PREFIX/dev/status
	tkValue            // PREFIX/dev/label
)

// parseTopic splits an incoming topic into device and label.
func (b *Bridge) parseTopic(topic string) (kind topicKind, dev, label string) {
	rest, ok := strings.CutPrefix(topic, b.prefix+"/")
	if !ok {
		return tkOther, "", ""
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || parts[0] == bridgeDevice || parts[0] == "" {
		return tkOther, "", ""
	}
	dev = parts[0]
	switch {
	case len(parts) == 3 && parts[1] == topicSet:
		return tkSet, dev, parts[2]
	case len(parts) == 4 && parts[1] == topicSet && parts[3] == topicResult:
		return tkResult, dev, parts[2]
	case len(parts) == 2 && parts[1] == topicMeta:
		return tkMeta, dev, ""
	case len(parts) == 2 && parts[1] == topicStatus:
		return tkStatus, dev, ""
	case len(parts) == 2 && parts[1] != topicSet:
		return tkValue, dev, parts[1]
	}
	return tkOther, "", ""
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
