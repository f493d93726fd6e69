package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Kind is what a label's value is, decided once here for every edge: the
// dashboard draws a chart, a switch or text from it, Home Assistant
// discovery makes a sensor or a binary sensor, and history rolls up numbers.
type Kind string

const (
	KindNumber Kind = "number" // a JSON number, or a string holding only a decimal number ("21.5")
	KindOnOff  Kind = "onoff"  // a JSON bool, or text whose last word is on/off-like ("LED ON", "closed")
	KindText   Kind = "text"   // anything else: other text, null, objects, arrays
)

// onOffWords are the last words that make a text value on/off-like, with
// the state they mean (case-insensitive).
var onOffWords = map[string]bool{
	"on": true, "true": true, "high": true, "yes": true, "open": true, "enabled": true, "active": true,
	"off": false, "false": false, "low": false, "no": false, "closed": false, "disabled": false, "inactive": false,
}

// KindOf classifies a value (compact JSON).
func KindOf(v json.RawMessage) Kind {
	if len(v) == 0 {
		return KindText
	}
	switch c := v[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return KindNumber
	case c == 't' || c == 'f':
		return KindOnOff
	case c == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return KindText
		}
		if _, ok := OnOffWord(s); ok {
			return KindOnOff
		}
		if numericText(s) {
			return KindNumber
		}
	}
	return KindText
}

// OnOffWord reports the state an on/off-like text means, from its last word
// ("LED ON" → true; words split at spaces, ':', '=', '_' and '-'), and ok
// false for any other text.
func OnOffWord(s string) (on, ok bool) {
	f := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ':' || r == '=' || r == '_' || r == '-'
	})
	if len(f) == 0 {
		return false, false
	}
	on, ok = onOffWords[f[len(f)-1]]
	return on, ok
}

// numericText reports whether s is a plain decimal number, optionally with
// an exponent and surrounding spaces ("21.5", " -3 ", "1e3"), as boards that
// print numbers as strings send them.
func numericText(s string) bool {
	t := strings.TrimSpace(s)
	if t == "" {
		return false
	}
	// Only digits, a point, signs and an exponent: ParseFloat alone would
	// also take "NaN", "Inf", hex and underscores.
	for _, r := range t {
		if !(r >= '0' && r <= '9' || strings.ContainsRune(".eE+-", r)) {
			return false
		}
	}
	_, err := strconv.ParseFloat(t, 64)
	return err == nil
}
