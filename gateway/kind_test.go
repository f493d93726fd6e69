package gateway

import (
	"encoding/json"
	"testing"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		v    string
		want Kind
	}{
		{`21.5`, KindNumber}, {`-3`, KindNumber}, {`0`, KindNumber}, {`1e3`, KindNumber},
		{`"21.5"`, KindNumber}, {`" -3 "`, KindNumber}, {`"1e3"`, KindNumber},
		{`true`, KindOnOff}, {`false`, KindOnOff},
		{`"on"`, KindOnOff}, {`"OFF"`, KindOnOff}, {`"LED ON"`, KindOnOff}, {`"led_off"`, KindOnOff},
		{`"enabled"`, KindOnOff}, {`"Closed"`, KindOnOff}, {`"state=high"`, KindOnOff},
		{`"hello"`, KindText}, {`""`, KindText}, {`null`, KindText}, {`{"a":1}`, KindText}, {`[1,2]`, KindText},
		{`"0x1F"`, KindText}, {`"NaN"`, KindText}, {`"Inf"`, KindText}, {`"1_000"`, KindText}, {`"12 volts"`, KindText},
		{`"online"`, KindText}, {``, KindText},
	}
	for _, tt := range tests {
		if got := KindOf(json.RawMessage(tt.v)); got != tt.want {
			t.Errorf("KindOf(%s) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestOnOffWord(t *testing.T) {
	tests := []struct {
		s      string
		on, ok bool
	}{
		{"on", true, true}, {"LED OFF", false, true}, {"open", true, true}, {"inactive", false, true},
		{"onward", false, false}, {"", false, false}, {"   ", false, false},
	}
	for _, tt := range tests {
		on, ok := OnOffWord(tt.s)
		if on != tt.on || ok != tt.ok {
			t.Errorf("OnOffWord(%q) = %v, %v; want %v, %v", tt.s, on, ok, tt.on, tt.ok)
		}
	}
}
