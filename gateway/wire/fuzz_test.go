package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/esp32gw/esp32gw/gateway"
)

// firmwareOutput is what real boards send: the tutorial sketch's frames, the
// gwproto hello frame, flat objects and arrays, and the console noise of an
// ESP32 serial port (boot ROM, ESP-IDF logs with ANSI colours, the Arduino
// core's log format, a panic, a baud-rate mismatch).
var firmwareOutput = []string{
	`{"label":"count","value":0}`,
	`{"label":"count","value":1234}`,
	`{"label":"ledStatus","value":"LED ON"}`,
	`{"label":"ledStatus","value":"LED OFF"}`,
	`{"label":"hello","value":{"id":"esp32-240ac4000001","fw":"0.1.0","flavour":"serial","reset":"POWERON","reset_code":1,"uptime_ms":312}}`,
	`{"temperature":21.53,"humidity":48.2}`,
	`{"temp":21.50,"hum":40,"rssi":-67,"ok":true,"err":null}`,
	`[{"label":"relay1","value":"on"},{"label":"relay2","value":"off"}]`,
	`[{"label":"a","value":1},{"b":2,"c":[1,2,3]}]`,
	`{"label":"big","value":123456789012345678901234567890}`,
	`{"label":"exp","value":1e3}`,
	"{\"label\":\"count\",\"value\":7}\r",
	"ets Jun  8 2016 00:22:57",
	"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
	"configsip: 0, SPIWP:0xee",
	"clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00",
	"mode:DIO, clock div:1",
	"load:0x3fff0030,len:1184",
	"entry 0x400805e4",
	"\x1b[0;32mI (29) boot: ESP-IDF v4.4.4 2nd stage bootloader\x1b[0m",
	"\x1b[0;33mW (1021) wifi:Haven't to connect to a suitable AP now!\x1b[0m",
	"\x1b[0;31mE (3450) esp-tls: couldn't get hostname for :broker:\x1b[0m",
	"[   214][I][WiFiGeneric.cpp:1035] _eventCallback(): Reason: 2 - AUTH_EXPIRE",
	"[  1034][E][main.cpp:42] setup(): sensor not found",
	"Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled.",
	"Backtrace: 0x400d1a2b:0x3ffb1f50 0x400d5678:0x3ffb1f70",
	"Brownout detector was triggered",
	"Connecting to WiFi..",
	"# native_board: debug lines start with '#'",
	"\xff\xfe not UTF-8 \xc3\x28 at all",
	"\x00\xe0\xf8\xff{\"label\"",
	`{"temp":21.`,
	`{"label":5,"value":1}`,
	`[{"label":"a","value":1},42]`,
	`{"label":"temp","value":21.5,"ts":1764669600123}`,
	`{"temp":21.5,"hum":40,"ts":"2025-12-02T10:00:00.123Z"}`,
	`{"x":1,"ts":"yesterday"}`,
	`{"x":1,"ts":1e308}`,
	"",
}

func FuzzParse(f *testing.F) {
	for _, s := range firmwareOutput {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		rs, err := Parse(frame)
		if err != nil && !errors.Is(err, ErrNotJSON) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is neither ErrNotJSON nor ErrMalformed", err)
		}
		if errors.Is(err, ErrNotJSON) && len(rs) > 0 {
			t.Fatalf("ErrNotJSON with %d readings", len(rs))
		}
		if len(rs) > 2*MaxItems {
			t.Fatalf("%d readings from one frame", len(rs))
		}
		for _, r := range rs {
			// Labels may be empty or odd: the hub checks and drops them.
			if !utf8.ValidString(r.Label) {
				t.Fatalf("label %q is not UTF-8", r.Label)
			}
			if !json.Valid(r.Value) {
				t.Fatalf("reading %q: value %q is not valid JSON", r.Label, r.Value)
			}
			var c bytes.Buffer
			if json.Compact(&c, r.Value) != nil || !bytes.Equal(c.Bytes(), r.Value) {
				t.Fatalf("reading %q: value %q is not compact", r.Label, r.Value)
			}
		}
		if err == nil {
			// A usable frame is whole JSON; a console line never parses.
			if !json.Valid(bytes.TrimSpace(frame)) {
				t.Fatalf("no error for a frame that is not valid JSON: %q", frame)
			}
			// The same frame with line noise around it parses the same.
			again, err2 := Parse(append(append([]byte(" \t"), frame...), "\r\n"...))
			if err2 != nil || fmtReadings(again) != fmtReadings(rs) {
				t.Fatalf("whitespace changed the result: %v %s vs %s", err2, fmtReadings(again), fmtReadings(rs))
			}
		}
	})
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"toggle", "on", "off", " toggle\r\n", "",
		`{"label":"led","value":"toggle"}`,
		`{"value":"toggle"}`,
		`{"label":"relay2","value":"on"}`,
		`{"label":"setpoint","value":21.50}`,
		`{"label":"say \"hi\"","value":{"a":[1,2]}}`,
		`{"label":null,"value":1}`,
		`{"label":5,"value":1}`,
		`{"label":"led"}`,
		`{"value":`,
		"\xff\xfe\x00",
		`[1,2]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		c := ParseCommand(frame)
		if len(c.Value) == 0 || !json.Valid(c.Value) {
			t.Fatalf("value %q is not valid JSON", c.Value)
		}
		if !utf8.ValidString(c.Label) {
			t.Fatalf("label %q is not UTF-8", c.Label)
		}
		// Text boards get the allow-list key; json boards get a frame that
		// parses back to the same command.
		if got := string(EncodeCommand(gateway.FormatText, c)); got != gateway.CommandKey(c.Value) {
			t.Fatalf("text encoding %q, want %q", got, gateway.CommandKey(c.Value))
		}
		enc := EncodeCommand(gateway.FormatJSON, c)
		if !json.Valid(enc) {
			t.Fatalf("json encoding %q is not JSON", enc)
		}
		back := ParseCommand(enc)
		if back.Label != c.Label || !bytes.Equal(back.Value, c.Value) {
			t.Fatalf("round trip %q %s -> %s -> %q %s", c.Label, c.Value, enc, back.Label, back.Value)
		}
	})
}

func FuzzLogLine(f *testing.F) {
	for _, s := range firmwareOutput {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		s := LogLine(line)
		if !utf8.ValidString(s) {
			t.Fatalf("LogLine(%q) = %q is not UTF-8", line, s)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("LogLine(%q) = %q keeps control character %U", line, s, r)
			}
		}
	})
}
