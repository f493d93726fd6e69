// Package hadiscovery turns a device and the labels it has reported into
// Home Assistant MQTT discovery configs (DESIGN.md, "MQTT topics": one
// entity per observed label and per allowed command, each with a stable
// unique_id, a device block and availability from the device's status
// topic). It is pure: no MQTT client, no goroutines, no state; the bridge
// publishes what it returns, retained. Labels are classified by the core
// (gateway.KindOf, gateway.OnOffWord), as the dashboard classifies them.
package hadiscovery

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
)

// Online and offline are the availability payloads of the status topics
// the configs point at, and Home Assistant's birth message.
const (
	payloadOnline  = "online"
	payloadOffline = "offline"
)

// Config says where configs go and which of the bridge's topics they
// point at.
type Config struct {
	Prefix     string // the discovery prefix ("homeassistant")
	NodePrefix string // node ids are <NodePrefix>_<device> (the bridge's topic prefix)

	StatusTopic func(device string) string        // retained online/offline
	ValueTopic  func(device, label string) string // the label's value as JSON text
	SetTopic    func(device, label string) string // where a command for label goes

	// For devices that report board attributes (Device.RSSI and the rest;
	// unused otherwise):
	InfoTopic    func(device string) string // retained JSON object of the board's attributes
	UpdateTopic  func(device string) string // retained JSON state of the update entity
	InstallTopic func(device string) string // where Home Assistant's install request goes
}

// BirthTopic is where Home Assistant announces itself (retained configs
// are re-sent when it publishes "online" there).
func (c Config) BirthTopic() string { return c.Prefix + "/status" }

// IsBirth reports whether payload on BirthTopic says Home Assistant is up.
func IsBirth(payload []byte) bool { return strings.TrimSpace(string(payload)) == payloadOnline }

// Device is what discovery needs to know about one device.
type Device struct {
	ID, Name, Transport string
	Commands            []string // the allow-list
	Labels              []Label  // in first-seen order; only labels with a value topic

	// Board attributes (DESIGN.md, "Attributes"): a board that reports
	// $rssi or $uptime gets a diagnostic sensor for each, reading the info
	// topic; one that reports $fw an update entity, whose state is on the
	// update topic, with an install command when Installable.
	RSSI, Uptime, Firmware bool
	Installable            bool
}

// Object ids of the attribute entities. A label whose own id would be one
// of these gets a hash suffix instead (labelObjectID).
const (
	objectRSSI     = "info_rssi"
	objectUptime   = "info_uptime"
	objectFirmware = "firmware" // an update entity: no label makes one
)

// PayloadInstall is what Home Assistant publishes on the install topic.
const PayloadInstall = "install"

// Label is one observed label and the shape of its latest value.
type Label struct {
	Name  string
	Shape Shape
}

// Configs returns every retained discovery config for d, keyed by topic:
//
//   - every label: a number is a sensor, an on/off-like value a
//     binary_sensor whose payload_on/payload_off are the board's own two
//     values, anything else a text sensor;
//   - an on/off-like label of a device that allows "toggle", or both "on"
//     and "off", also gets a switch sending those commands;
//   - every allowed command gets a button whose payload_press is the
//     command. A button acts on (publishes to the set topic of) the
//     device's on/off label; with several on/off labels each gets its own
//     buttons; with none, the label is "command";
//   - board attributes: diagnostic sensors for $rssi and $uptime and an
//     update entity for $fw (attributeConfigs).
//
// Object ids, and so unique_ids (<node>_<object>), are stable and distinct:
// a label's is the label ("count"), a switch's "<label>_switch", a
// button's "cmd_<command>" or "<label>_cmd_<command>"; a label whose own id
// could collide with those gets a hash suffix.
func Configs(c Config, d Device) map[string][]byte {
	node := idSafe(c.NodePrefix + "_" + d.ID)
	devBlock := map[string]any{
		"identifiers":  []string{node},
		"name":         d.Name,
		"manufacturer": "esp32gw",
		"model":        d.Transport + " board",
	}
	base := func(name, object string) map[string]any {
		return map[string]any{
			"name":                  name,
			"unique_id":             node + "_" + object,
			"object_id":             node + "_" + object,
			"availability_topic":    c.StatusTopic(d.ID),
			"payload_available":     payloadOnline,
			"payload_not_available": payloadOffline,
			"device":                devBlock,
			"origin":                map[string]any{"name": "esp32gw"},
		}
	}
	out := map[string][]byte{}
	add := func(component, object string, cfg map[string]any) {
		topic := fmt.Sprintf("%s/%s/%s/%s/config", c.Prefix, component, node, object)
		out[topic], _ = json.Marshal(cfg)
	}
	attributeConfigs(c, d, base, add)

	// The allow-list's own spelling of on, off and toggle, if present.
	allowed := map[string]string{}
	for _, cmd := range d.Commands {
		allowed[strings.ToLower(cmd)] = cmd
	}
	var binaryLabels []string
	for _, lb := range d.Labels {
		l, sh := lb.Name, lb.Shape
		object := labelObjectID(l)
		cfg := base(l, object)
		cfg["state_topic"] = c.ValueTopic(d.ID, l)
		cfg["value_template"] = valueTemplate(sh)
		switch sh.form {
		case formNumber, formNumberText:
			cfg["state_class"] = "measurement"
			add("sensor", object, cfg)
		case formBinary:
			binaryLabels = append(binaryLabels, l)
			cfg["payload_on"], cfg["payload_off"] = sh.on, sh.off
			add("binary_sensor", object, cfg)
			on, off := allowed["on"], allowed["off"]
			if on == "" || off == "" {
				on, off = allowed["toggle"], allowed["toggle"]
			}
			if on != "" {
				sw := base(l+" switch", object+"_switch")
				sw["state_topic"] = c.ValueTopic(d.ID, l)
				sw["value_template"] = valueTemplate(sh)
				sw["state_on"], sw["state_off"] = sh.on, sh.off
				sw["command_topic"] = c.SetTopic(d.ID, l)
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
		for _, cmd := range d.Commands {
			object := "cmd_" + objectID(cmd)
			cfg := base(cmd, object)
			cfg["command_topic"] = c.SetTopic(d.ID, label)
			cfg["payload_press"] = cmd
			add("button", object, cfg)
		}
		return out
	}
	for _, l := range binaryLabels {
		for _, cmd := range d.Commands {
			object := labelObjectID(l) + "_cmd_" + objectID(cmd)
			cfg := base(l+" "+cmd, object)
			cfg["command_topic"] = c.SetTopic(d.ID, l)
			cfg["payload_press"] = cmd
			add("button", object, cfg)
		}
	}
	return out
}

// attributeConfigs adds the entities of d's board attributes: diagnostic
// sensors for RSSI and uptime (reading the info topic), and the update
// entity. base and add are Configs' own, so the entities share the device
// block and availability of the others.
func attributeConfigs(c Config, d Device, base func(name, object string) map[string]any, add func(component, object string, cfg map[string]any)) {
	diag := func(name, object, attr, class, unit string) {
		cfg := base(name, object)
		cfg["state_topic"] = c.InfoTopic(d.ID)
		cfg["value_template"] = "{{ value_json." + attr + " }}"
		cfg["device_class"] = class
		cfg["unit_of_measurement"] = unit
		cfg["state_class"] = "measurement"
		cfg["entity_category"] = "diagnostic"
		add("sensor", object, cfg)
	}
	if d.RSSI {
		diag("RSSI", objectRSSI, "rssi", "signal_strength", "dBm")
	}
	if d.Uptime {
		diag("Uptime", objectUptime, "uptime", "duration", "s")
	}
	if d.Firmware {
		cfg := base("Firmware", objectFirmware)
		cfg["state_topic"] = c.UpdateTopic(d.ID)
		cfg["device_class"] = "firmware"
		cfg["entity_category"] = "config"
		if d.Installable {
			cfg["command_topic"] = c.InstallTopic(d.ID)
			cfg["payload_install"] = PayloadInstall
		}
		add("update", objectFirmware, cfg)
	}
}

// UpdateState is the update entity's state, as Home Assistant's MQTT update
// platform reads a JSON state: the versions, whether an update runs and
// how far (UpdatePercentage nil: unknown, encoded as null).
type UpdateState struct {
	InstalledVersion string `json:"installed_version"`
	LatestVersion    string `json:"latest_version"`
	InProgress       bool   `json:"in_progress"`
	UpdatePercentage *int   `json:"update_percentage"`
	Title            string `json:"title"`
}

// JSON is the payload for the update topic.
func (s UpdateState) JSON() []byte {
	b, _ := json.Marshal(s) // strings, a bool and an int always encode
	return b
}

// labelObjectID is a label's object id: objectID, with a hash suffix too
// when the label could pass for a switch's, a button's or an attribute
// sensor's id.
func labelObjectID(l string) string {
	id := objectID(l)
	if strings.Contains(id, "cmd_") || strings.HasSuffix(id, "_switch") || id == objectRSSI || id == objectUptime {
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
