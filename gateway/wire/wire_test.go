package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/esp32gw/esp32gw/gateway"
)

func fmtReadings(rs []gateway.Reading) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.Label+"="+string(r.Value))
	}
	return strings.Join(parts, " ")
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		frame   string
		want    string // label=value pairs, in order
		wantErr error
	}{
		// The seed form, as the tutorial sketch sends it.
		{"seed number", `{"label":"temp","value":21.5}`, "temp=21.5", nil},
		{"seed string", `{"label":"ledStatus","value":"LED ON"}`, `ledStatus="LED ON"`, nil},
		{"seed value first", `{"value":true,"label":"led"}`, "led=true", nil},
		{"seed null", `{"label":"err","value":null}`, "err=null", nil},
		{"seed nested", `{"label":"gps","value":{"lat":52.52, "lon":13.40,"fix":[1, 2]}}`, `gps={"lat":52.52,"lon":13.40,"fix":[1,2]}`, nil},
		{"seed extra keys ignored", `{"label":"temp","value":1,"unit":"C"}`, "temp=1", nil},
		{"seed empty label kept for the hub to drop", `{"label":"","value":1}`, "=1", nil},
		{"label not a string", `{"label":5,"value":1}`, "", ErrMalformed},
		{"label null", `{"label":null,"value":1}`, "", ErrMalformed},
		// Flat objects: each key is a label, in the order sent.
		{"flat", `{"temp":21.5,"hum":40}`, "temp=21.5 hum=40", nil},
		{"flat order kept", `{"z":1,"a":2,"m":3}`, "z=1 a=2 m=3", nil},
		{"flat with label but no value", `{"label":"x","rssi":-60}`, `label="x" rssi=-60`, nil},
		{"flat nested", `{"pos":{"x":1},"list":[1,"a",null]}`, `pos={"x":1} list=[1,"a",null]`, nil},
		{"flat empty", `{}`, "", nil},
		{"flat unicode key", `{"température":19}`, "température=19", nil},
		// Numbers exactly as sent.
		{"trailing zero", `{"t":21.50}`, "t=21.50", nil},
		{"exponent", `{"t":1e3,"u":-2.5E-7}`, "t=1e3 u=-2.5E-7", nil},
		{"big integer", `{"n":123456789012345678901234567890}`, "n=123456789012345678901234567890", nil},
		{"uint64 max", `{"label":"n","value":18446744073709551615}`, "n=18446744073709551615", nil},
		// Arrays of either form.
		{"array of seeds", `[{"label":"relay1","value":"on"},{"label":"relay2","value":"off"}]`, `relay1="on" relay2="off"`, nil},
		{"array mixed", `[{"label":"a","value":1},{"b":2,"c":3}]`, "a=1 b=2 c=3", nil},
		{"array empty", `[]`, "", nil},
		{"array with bad elements", `[{"label":"a","value":1},42,"x",{"label":7,"value":1},[1],{"b":2}]`, "a=1 b=2", ErrMalformed},
		// Whitespace around a frame (CRLF from Serial.println).
		{"crlf", "{\"a\":1}\r\n", "a=1", nil},
		{"spaces", "  \t{\"a\" : 1 }  ", "a=1", nil},
		// Not JSON: console lines.
		{"empty", "", "", ErrNotJSON},
		{"blank", " \r\n", "", ErrNotJSON},
		{"rom banner", "ets Jun  8 2016 00:22:57", "", ErrNotJSON},
		{"rom reset", "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)", "", ErrNotJSON},
		{"rom load", "load:0x3fff0030,len:1344", "", ErrNotJSON},
		{"println", "Connecting to WiFi..", "", ErrNotJSON},
		{"idf log with colours", "\x1b[0;32mI (318) wifi:mode : sta (24:0a:c4:00:00:01)\x1b[0m", "", ErrNotJSON},
		{"arduino core log", "[   214][I][WiFiGeneric.cpp:1035] _eventCallback(): Reason: 2 - AUTH_EXPIRE", "", ErrNotJSON},
		{"arduino core log short", "[  1234][E][main.cpp:10] setup(): sensor not found", "", ErrNotJSON},
		{"bare number", "42", "", ErrNotJSON},
		{"bare string", `"toggle"`, "", ErrNotJSON},
		{"plain text", "hello world", "", ErrNotJSON},
		// Looks like JSON, is not.
		{"truncated", `{"temp":21.`, "", ErrMalformed},
		{"unterminated string", `{"label":"te`, "", ErrMalformed},
		{"single quotes", `{'temp':1}`, "", ErrMalformed},
		{"trailing comma", `{"a":1,}`, "", ErrMalformed},
		{"NaN", `{"a":NaN}`, "", ErrMalformed},
		{"invalid UTF-8 in key", "{\"te\xffmp\":1}", "", ErrMalformed},
		{"invalid UTF-8 in value", "{\"label\":\"t\",\"value\":\"\xc3\x28\"}", "", ErrMalformed},
		{"NUL noise", "{\"a\":1\x00}", "", ErrMalformed},
		{"two objects glued", `{"a":1}{"b":2}`, "", ErrNotJSON},
		{"object then text", `{"a":1} ok`, "", ErrNotJSON},
		{"text after value with bad byte", "[  12][W][x.c:1] \xff", "", ErrNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse([]byte(tt.frame))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Parse(%q): %v", tt.frame, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) err %v, want %v", tt.frame, err, tt.wantErr)
			}
			if got := fmtReadings(rs); got != tt.want {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tt.frame, got, tt.want)
			}
			for _, r := range rs {
				if !json.Valid(r.Value) {
					t.Errorf("reading %q has invalid JSON value %q", r.Label, r.Value)
				}
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		max   int
	}{
		{"array", "[" + strings.TrimSuffix(strings.Repeat(`{"a":1},`, MaxItems+10), ",") + "]", MaxItems},
		{"object", "{" + strings.TrimSuffix(strings.Repeat(`"a":1,`, MaxItems+10), ",") + "}", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse([]byte(tt.frame))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v, want ErrMalformed", err)
			}
			if len(rs) > tt.max {
				t.Errorf("%d readings, want at most %d", len(rs), tt.max)
			}
		})
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		label string
		value string
	}{
		{"bare text", "toggle", "", `"toggle"`},
		{"text kept exactly", " on ", "", `" on "`},
		{"seed form", `{"label":"led","value":"toggle"}`, "led", `"toggle"`},
		{"value only", `{"value":"toggle"}`, "", `"toggle"`},
		{"number value compacted", `{ "label" : "setpoint", "value" : 21.50 }`, "setpoint", `21.50`},
		{"object value", `{"label":"rgb","value":{"r": 255, "g":0}}`, "rgb", `{"r":255,"g":0}`},
		{"label with quotes", `{"label":"say \"hi\"","value":1}`, `say "hi"`, `1`},
		{"null label", `{"label":null,"value":1}`, "", `1`},
		{"no value is text", `{"label":"led"}`, "", `"{\"label\":\"led\"}"`},
		{"label not a string is text", `{"label":5,"value":1}`, "", `"{\"label\":5,\"value\":1}"`},
		{"broken JSON is text", `{"value":`, "", `"{\"value\":"`},
		{"JSON number is text", `1`, "", `"1"`},
		{"invalid UTF-8", "tog\xffgle", "", "\"tog\uFFFDgle\""},
		{"html chars", "<b>&", "", `"\u003cb\u003e\u0026"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ParseCommand([]byte(tt.frame))
			if c.Label != tt.label || string(c.Value) != tt.value {
				t.Errorf("ParseCommand(%q) = %q %s, want %q %s", tt.frame, c.Label, c.Value, tt.label, tt.value)
			}
			if !json.Valid(c.Value) {
				t.Errorf("value %q is not JSON", c.Value)
			}
		})
	}
}

func TestEncodeCommand(t *testing.T) {
	tests := []struct {
		name   string
		format string
		label  string
		value  string
		want   string
	}{
		{"text string", gateway.FormatText, "led", `"toggle"`, "toggle"},
		{"text number", gateway.FormatText, "", `21.5`, "21.5"},
		{"text bool", gateway.FormatText, "", `true`, "true"},
		{"text escaped string", gateway.FormatText, "", `"say \"hi\""`, `say "hi"`},
		{"text object", gateway.FormatText, "", `{"r":1}`, `{"r":1}`},
		{"empty format is text", "", "", `"toggle"`, "toggle"},
		{"json with label", gateway.FormatJSON, "relay1", `"on"`, `{"label":"relay1","value":"on"}`},
		{"json without label", gateway.FormatJSON, "", `"toggle"`, `{"value":"toggle"}`},
		{"json label with quotes", gateway.FormatJSON, `a "b"\c`, `1`, `{"label":"a \"b\"\\c","value":1}`},
		{"json object value", gateway.FormatJSON, "rgb", `{"r":255}`, `{"label":"rgb","value":{"r":255}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeCommand(tt.format, gateway.Command{Label: tt.label, Value: json.RawMessage(tt.value)})
			if string(got) != tt.want {
				t.Errorf("EncodeCommand = %s, want %s", got, tt.want)
			}
			if tt.format != gateway.FormatJSON {
				return
			}
			// A json board parses it back to the same command.
			back := ParseCommand(got)
			if back.Label != tt.label || string(back.Value) != tt.value {
				t.Errorf("round trip: %q %s", back.Label, back.Value)
			}
		})
	}
}

func TestLogLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string
	}{
		{"plain", "Connecting to WiFi..", "Connecting to WiFi.."},
		{"rom banner", "ets Jun  8 2016 00:22:57", "ets Jun  8 2016 00:22:57"},
		{"idf colours", "\x1b[0;32mI (318) wifi: connected\x1b[0m", "I (318) wifi: connected"},
		{"idf warning colour", "\x1b[0;33mW (1021) boot: PRO CPU has been reset\x1b[0m", "W (1021) boot: PRO CPU has been reset"},
		{"bare reset", "\x1b[mdone", "done"},
		{"unterminated escape", "text\x1b[0;3", "text"},
		{"lone escape", "a\x1bb", "ab"},
		{"carriage return", "line\r", "line"},
		{"tab", "a\tb", "a b"},
		{"NUL noise", "\x00\x00boot", "boot"},
		{"0xFF noise", "\xff\xfeboot", "\uFFFD\uFFFDboot"},
		{"invalid UTF-8 inside", "caf\xc3 ok", "caf\uFFFD ok"},
		{"valid UTF-8", "température 21°C", "température 21°C"},
		{"bell and DEL", "a\x07b\x7f", "ab"},
		{"trailing spaces trimmed", "x   ", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LogLine([]byte(tt.line))
			if got != tt.want {
				t.Errorf("LogLine(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestParseAttributes(t *testing.T) {
	for _, frame := range []string{
		`{"$fw":"1.2.0","$rssi":-61,"temp":21.5,"ts":1764669600123}`,
		`[{"label":"$fw","value":"1.2.0","ts":1764669600123},{"label":"$rssi","value":-61,"ts":1764669600123},{"label":"temp","value":21.5,"ts":1764669600123}]`,
	} {
		rs, err := Parse([]byte(frame))
		if err != nil || len(rs) != 3 {
			t.Fatalf("%s: %v %v", frame, rs, err)
		}
		if !rs[0].Attr || rs[0].Label != "fw" || !rs[1].Attr || rs[1].Label != "rssi" || rs[2].Attr || rs[2].Label != "temp" {
			t.Errorf("%s: %+v", frame, rs)
		}
		if rs[0].TS.UnixMilli() != 1764669600123 {
			t.Errorf("%s: ts %v", frame, rs[0].TS)
		}
	}
}
