package gateway

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestStandardLibraryOnly enforces the contract's inward dependencies: the
// core imports nothing outside the standard library (no gorilla, paho or
// serial), directly or through another package of this module.
func TestStandardLibraryOnly(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const self = "github.com/esp32gw/esp32gw/gateway"
	var bad []string
	sawSelf := false
	for _, p := range strings.Fields(string(out)) {
		if p == self {
			sawSelf = true
			continue
		}
		bad = append(bad, p)
	}
	if !sawSelf {
		t.Fatalf("go list did not list %s itself; output:\n%s", self, out)
	}
	if len(bad) > 0 {
		t.Errorf("gateway must import only the standard library; it depends on:\n  %s", strings.Join(bad, "\n  "))
	}
}
