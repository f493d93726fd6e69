package hadiscovery

import (
	"encoding/json"
	"testing"
)

func TestShapeOf(t *testing.T) {
	for _, tc := range []struct{ v, on, off string }{
		{`"LED ON"`, "LED ON", "LED OFF"}, {`"LED OFF"`, "LED ON", "LED OFF"}, {`"on"`, "on", "off"},
		{`"Closed"`, "Open", "Closed"}, {`"door open "`, "door open ", "door closed "}, {`false`, "true", "false"},
		{`"HIGH"`, "HIGH", "LOW"},
	} {
		sh := ShapeOf(json.RawMessage(tc.v))
		if sh.form != formBinary || sh.on != tc.on || sh.off != tc.off {
			t.Errorf("ShapeOf(%s) = %+v, want on %q off %q", tc.v, sh, tc.on, tc.off)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want form
	}{
		{`21.5`, formNumber}, {`-3`, formNumber}, {`true`, formBinary}, {`"LED ON"`, formBinary},
		{`"off"`, formBinary}, {`"Open"`, formBinary}, {`"hello"`, formText}, {`null`, formText},
		{`{"a":1}`, formJSON}, {`[1,2]`, formJSON}, {`"onion"`, formText},
		// The core's kinds, beyond what the bridge's own word list knew.
		{`"21.5"`, formNumberText}, {`" -3 "`, formNumberText}, {`"enabled"`, formBinary},
		{`"inactive"`, formBinary}, {`"led_on"`, formBinary}, {`"state=OFF"`, formBinary},
	} {
		if got := ShapeOf(json.RawMessage(tc.v)).form; got != tc.want {
			t.Errorf("ShapeOf(%s).form = %d, want %d", tc.v, got, tc.want)
		}
	}
}
