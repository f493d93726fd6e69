package mqttbridge

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
)

// valueKind is what a label's value looks like to Home Assistant.
type valueKind int

const (
	kindText   valueKind = iota // a string or null: a text sensor
	kindNumber                  // a number: a measurement sensor
	kindBinary                  // a bool or on/off-like text: a binary sensor (or switch)
	kindJSON                    // an object or array: a sensor showing the raw JSON
)

// onWords and offWords make a text value on/off-like when its last word
// (case-insensitive) is one of them: "on", "OFF", "LED ON", "open".
var (
	onWords  = []string{"on", "true", "open", "yes", "high"}
	offWords = []string{"off", "false", "closed", "no", "low"}
)

func classify(v json.RawMessage) valueKind {
	if len(v) == 0 {
		return kindText
	}
	switch c := v[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return kindNumber
	case c == 't' || c == 'f':
		return kindBinary
	case c == '{' || c == '[':
		return kindJSON
	case c == '"':
		var s string
		if json.Unmarshal(v, &s) == nil && onOffLike(s) {
			return kindBinary
		}
	}
	return kindText
}

func onOffLike(s string) bool {
	f := strings.Fields(strings.ToLower(s))
	if len(f) == 0 {
		return false
	}
	last := f[len(f)-1]
	for _, w := range append(onWords[:len(onWords):len(onWords)], offWords...) {
		if last == w {
			return true
		}
	}
	return false
}

// binaryTemplate maps a bool or on/off-like text to ON/OFF in Home
// Assistant's Jinja.
var binaryTemplate = "{{ 'ON' if (value_json | string | lower).split(' ') | last in ['" +
	strings.Join(onWords, "','") + "'] else 'OFF' }}"

// discoveryDevice is what discovery needs to know about one local device.
type discoveryDevice struct {
	id, name, transport string
	commands            []string
	labels              []string // in first-seen order
	kinds               map[string]valueKind
}

// discoveryConfigs returns every retained discovery config for d, keyed by
// topic: one entity per observed label and per allowed command.
func (b *Bridge) discoveryConfigs(d discoveryDevice) map[string][]byte {
	node := idSafe(b.prefix + "_" + d.id)
	devBlock := map[string]any{
		"identifiers":  []string{node},
		"name":         d.name,
		"manufacturer": "esp32gw",
		"model":        d.transport + " board",
	}
	base := func(name, object string) map[string]any {
		return map[string]any{
			"name":                  name,
			"unique_id":             node + "_" + object,
			"object_id":             node + "_" + object,
			"availability_topic":    b.statusTopic(d.id),
			"payload_available":     payloadOnline,
			"payload_not_available": payloadOffline,
			"device":                devBlock,
			"origin":                map[string]any{"name": "esp32gw"},
		}
	}
	out := map[string][]byte{}
	add := func(component, object string, cfg map[string]any) {
		topic := fmt.Sprintf("%s/%s/%s/%s/config", b.haPrefix, component, node, object)
		out[topic], _ = json.Marshal(cfg)
	}

	allowed := map[string]bool{}
	for _, c := range d.commands {
		allowed[strings.ToLower(c)] = true
	}
	onOffCommands := allowed["on"] && allowed["off"]
	var binaryLabels []string
	for _, l := range d.labels {
		if d.kinds[l] == kindBinary {
			binaryLabels = append(binaryLabels, l)
		}
	}

	for _, l := range d.labels {
		if reservedLabel(l) {
			continue
		}
		object := objectID(l)
		cfg := base(l, object)
		cfg["state_topic"] = b.valueTopic(d.id, l)
		switch d.kinds[l] {
		case kindNumber:
			cfg["value_template"] = "{{ value_json }}"
			cfg["state_class"] = "measurement"
			add("sensor", object, cfg)
		case kindBinary:
			cfg["value_template"] = binaryTemplate
			if onOffCommands {
				cfg["command_topic"] = b.setTopic(d.id, l)
				cfg["payload_on"], cfg["payload_off"] = "on", "off"
				cfg["state_on"], cfg["state_off"] = "ON", "OFF"
				add("switch", object, cfg)
			} else {
				cfg["payload_on"], cfg["payload_off"] = "ON", "OFF"
				add("binary_sensor", object, cfg)
			}
		case kindJSON:
			cfg["value_template"] = "{{ value }}"
			add("sensor", object, cfg)
		default:
			cfg["value_template"] = "{{ value_json }}"
			add("sensor", object, cfg)
		}
	}

	// Buttons for the allowed commands a switch does not already cover.
	// Their topic's label is the device's one on/off label when it has
	// exactly one (the tutorial board's "toggle" acts on ledStatus),
	// else "command".
	buttonLabel := "command"
	if len(binaryLabels) == 1 {
		buttonLabel = binaryLabels[0]
	}
	for _, c := range d.commands {
		lc := strings.ToLower(c)
		if onOffCommands && len(binaryLabels) > 0 && (lc == "on" || lc == "off") {
			continue
		}
		object := "cmd_" + objectID(c)
		cfg := base(c, object)
		cfg["command_topic"] = b.setTopic(d.id, buttonLabel)
		cfg["payload_press"] = c
		add("button", object, cfg)
	}
	return out
}

// objectID makes a discovery object id from a label or command: the
// characters Home Assistant allows, with a short hash when any were
// replaced so that distinct labels keep distinct ids.
func objectID(s string) string {
	safe := idSafe(s)
	if safe == s && s != "" {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%s_%08x", safe, h.Sum32())
}

// idSafe keeps [a-zA-Z0-9_-] and turns anything else into '_'.
func idSafe(s string) string {
	var sb strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			sb.WriteRune(c)
		default:
			sb.WriteByte('_')
		}
	}
	return sb.String()
}
