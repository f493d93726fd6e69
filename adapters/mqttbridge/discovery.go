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
	kindBinary                  // a bool or on/off-like text: a binary sensor (and maybe a switch)
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

// valueShape is what discovery needs to know about a label's value: its
// kind and, for an on/off-like one, the board's two values as Home
// Assistant renders them (with valueTemplate).
type valueShape struct {
	kind    valueKind
	on, off string
}

// shapeOf returns v's shape. The on/off pair of a text value keeps the
// board's wording and case: "LED ON" pairs with "LED OFF", "Open" with
// "Closed"; a JSON bool is "true"/"false".
func shapeOf(v json.RawMessage) valueShape {
	sh := valueShape{kind: classify(v)}
	if sh.kind != kindBinary {
		return sh
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		sh.on, sh.off = "true", "false"
		return sh
	}
	f := strings.Fields(s)
	last := f[len(f)-1]
	i := strings.LastIndex(s, last)
	lower := strings.ToLower(last)
	for j := range onWords {
		var other string
		switch lower {
		case onWords[j]:
			other = offWords[j]
		case offWords[j]:
			other = onWords[j]
		default:
			continue
		}
		switch {
		case last == strings.ToUpper(last):
			other = strings.ToUpper(other)
		case last[:1] == strings.ToUpper(last[:1]):
			other = strings.ToUpper(other[:1]) + other[1:]
		}
		swapped := s[:i] + other + s[i+len(last):]
		if lower == onWords[j] {
			sh.on, sh.off = s, swapped
		} else {
			sh.on, sh.off = swapped, s
		}
		break
	}
	return sh
}

// valueTemplate is how Home Assistant renders a value: a JSON string as its
// text, anything else as the raw JSON (true, 21.5, {"a":1}).
func valueTemplate(sh valueShape) string {
	if sh.kind == kindBinary && sh.on == "true" {
		return "{{ value }}" // value_json would render a bool as True
	}
	if sh.kind == kindJSON {
		return "{{ value }}"
	}
	return "{{ value_json }}"
}

// discoveryDevice is what discovery needs to know about one local device.
type discoveryDevice struct {
	id, name, transport string
	commands            []string
	labels              []string // in first-seen order
	shapes              map[string]valueShape
}

// discoveryConfigs returns every retained discovery config for d, keyed by
// topic (DESIGN.md: one entity per observed label and per allowed command):
//
//   - every label: a number is a sensor, an on/off-like value a
//     binary_sensor whose payload_on/payload_off are the board's own two
//     values, anything else a text sensor;
//   - an on/off-like label of a device that allows "toggle", or both "on"
//     and "off", also gets a switch sending those commands;
//   - every allowed command gets a button whose payload_press is the
//     command. A button acts on (publishes to the set topic of) the
//     device's on/off label; with several on/off labels each gets its own
//     buttons; with none, the label is "command".
//
// Object ids, and so unique_ids (<prefix>_<device>_<object>), are stable and
// distinct: a label's is the label ("count"), a switch's "<label>_switch",
// a button's "cmd_<command>" or "<label>_cmd_<command>"; a label whose own
// id could collide with those gets a hash suffix.
func (b *Bridge) discoveryConfigs(d discoveryDevice) map[string][]byte {
	node := idSafe(b.topics.prefix + "_" + d.id)
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
			"availability_topic":    b.topics.status(d.id),
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

	// The allow-list's own spelling of on, off and toggle, if present.
	allowed := map[string]string{}
	for _, c := range d.commands {
		allowed[strings.ToLower(c)] = c
	}
	var binaryLabels []string
	for _, l := range d.labels {
		if reservedLabel(l) {
			continue
		}
		sh := d.shapes[l]
		object := labelObjectID(l)
		cfg := base(l, object)
		cfg["state_topic"] = b.topics.value(d.id, l)
		cfg["value_template"] = valueTemplate(sh)
		switch sh.kind {
		case kindNumber:
			cfg["state_class"] = "measurement"
			add("sensor", object, cfg)
		case kindBinary:
			binaryLabels = append(binaryLabels, l)
			cfg["payload_on"], cfg["payload_off"] = sh.on, sh.off
			add("binary_sensor", object, cfg)
			on, off := allowed["on"], allowed["off"]
			if on == "" || off == "" {
				on, off = allowed["toggle"], allowed["toggle"]
			}
			if on != "" {
				sw := base(l+" switch", object+"_switch")
				sw["state_topic"] = b.topics.value(d.id, l)
				sw["value_template"] = valueTemplate(sh)
				sw["state_on"], sw["state_off"] = sh.on, sh.off
				sw["command_topic"] = b.topics.set(d.id, l)
				sw["payload_on"], sw["payload_off"] = on, off
				add("switch", object+"_switch", sw)
			}
		default:
			add("sensor", object, cfg)
		}
	}

	if len(binaryLabels) <= 1 {
		label := "command"
		if len(binaryLabels) == 1 {
			label = binaryLabels[0]
		}
		for _, c := range d.commands {
			object := "cmd_" + objectID(c)
			cfg := base(c, object)
			cfg["command_topic"] = b.topics.set(d.id, label)
			cfg["payload_press"] = c
			add("button", object, cfg)
		}
		return out
	}
	for _, l := range binaryLabels {
		for _, c := range d.commands {
			object := labelObjectID(l) + "_cmd_" + objectID(c)
			cfg := base(l+" "+c, object)
			cfg["command_topic"] = b.topics.set(d.id, l)
			cfg["payload_press"] = c
			add("button", object, cfg)
		}
	}
	return out
}

// labelObjectID is a label's object id: objectID, with a hash suffix too
// when the label could pass for a switch's or a button's id.
func labelObjectID(l string) string {
	id := objectID(l)
	if strings.Contains(id, "cmd_") || strings.HasSuffix(id, "_switch") {
		if id == l { // objectID added no hash
			h := fnv.New32a()
			h.Write([]byte(l))
			id = fmt.Sprintf("%s_%08x", id, h.Sum32())
		}
	}
	return id
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
