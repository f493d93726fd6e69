package mqttbridge

import "testing"

func TestCommandValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`toggle`, `"toggle"`},
		{`"toggle"`, `"toggle"`},
		{` 42 `, `42`},
		{`-1.5`, `-1.5`},
		{`true`, `true`},
		{`{"a": 1}`, `{"a":1}`},
		{`[1,2]`, `"[1,2]"`},
		{`null`, `"null"`},
		{"toggle\n", `"toggle"`},
		{``, `""`},
		{"\xff", "\"\ufffd\""},
	} {
		if got := string(commandValue([]byte(tc.in))); got != tc.want {
			t.Errorf("commandValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
