package hadiscovery

import (
	"encoding/json"
	"strings"

	"github.com/esp32gw/esp32gw/gateway"
)

// form is how Home Assistant shows a label, from its value's gateway.Kind.
type form int

const (
	formText       form = iota // other text or null: a text sensor
	formNumber                 // a JSON number: a measurement sensor
	formNumberText             // a string holding a number ("21.5"): a measurement sensor reading the number
	formBinary                 // on/off-like: a binary sensor (and maybe a switch)
	formJSON                   // an object or array (text to the core): a sensor showing the raw JSON
)

// Shape is what discovery needs to know about a label's value: how Home
// Assistant shows it and, for an on/off-like one, the board's two values
// as Home Assistant renders them. Shapes are comparable: a label whose
// shape changed needs its configs re-sent.
type Shape struct {
	form    form
	on, off string
}

// ShapeOf returns v's shape. Its kind is the core's (gateway.KindOf); the
// on/off pair of a text value keeps the board's wording and case: "LED ON"
// pairs with "LED OFF", "Open" with "Closed"; a JSON bool is
// "true"/"false". An on/off word whose opposite discovery cannot spell is
// shown as text.
func ShapeOf(v json.RawMessage) Shape {
	switch gateway.KindOf(v) {
	case gateway.KindNumber:
		if v[0] == '"' {
			return Shape{form: formNumberText}
		}
		return Shape{form: formNumber}
	case gateway.KindOnOff:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return Shape{form: formBinary, on: "true", off: "false"}
		}
		if on, off, ok := onOffPair(s); ok {
			return Shape{form: formBinary, on: on, off: off}
		}
		return Shape{form: formText}
	}
	if len(v) > 0 && (v[0] == '{' || v[0] == '[') {
		return Shape{form: formJSON}
	}
	return Shape{form: formText}
}

// opposite spells the other state of each on/off word the core knows
// (gateway.OnOffWord decides which words are on/off-like; this only says
// how to write the other one). TestOppositeAgreesWithCore keeps the two in
// step.
var opposite = map[string]string{
	"on": "off", "true": "false", "high": "low", "yes": "no", "open": "closed", "enabled": "disabled", "active": "inactive",
	"off": "on", "false": "true", "low": "high", "no": "yes", "closed": "open", "disabled": "enabled", "inactive": "active",
}

// wordSep reports the characters gateway.OnOffWord splits words at.
func wordSep(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ':' || r == '=' || r == '_' || r == '-'
}

// onOffPair returns the board's on and off values for an on/off-like text
// s: s itself, and s with its last word swapped for the opposite one.
func onOffPair(s string) (on, off string, ok bool) {
	isOn, ok := gateway.OnOffWord(s)
	if !ok {
		return "", "", false
	}
	end := strings.LastIndexFunc(s, func(r rune) bool { return !wordSep(r) }) + 1
	start := strings.LastIndexFunc(s[:end], wordSep) + 1
	last := s[start:end]
	other, ok := opposite[strings.ToLower(last)]
	if !ok {
		return "", "", false
	}
	switch {
	case last == strings.ToUpper(last):
		other = strings.ToUpper(other)
	case last[:1] == strings.ToUpper(last[:1]):
		other = strings.ToUpper(other[:1]) + other[1:]
	}
	swapped := s[:start] + other + s[end:]
	if isOn {
		return s, swapped, true
	}
	return swapped, s, true
}

// valueTemplate is how Home Assistant renders a value: a JSON string as its
// text, a numeric string as its number, anything else as the raw JSON
// (true, 21.5, {"a":1}).
func valueTemplate(sh Shape) string {
	switch {
	case sh.form == formBinary && sh.on == "true":
		return "{{ value }}" // value_json would render a bool as True
	case sh.form == formJSON:
		return "{{ value }}"
	case sh.form == formNumberText:
		return "{{ value_json | float(0) }}"
	}
	return "{{ value_json }}"
}
