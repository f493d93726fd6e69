package gateway

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/esp32gw/esp32gw"

// importRule says which of this module's packages a group of packages may
// import directly. A package is governed by the first rule whose prefix
// matches it (most specific first).
type importRule struct {
	pkg        string   // package path prefix, relative to the module
	allow      []string // module-relative prefixes it may import
	stdlibOnly bool     // no imports outside the standard library, even transitively
}

// importTable is the project's layering (DESIGN.md, "Layout"): dependencies
// point inward. cmd wires everything; web and adapters import the core; the
// core imports only the standard library; adapters do not import each other
// except through adapters/internal, and web and adapters never meet.
var importTable = []importRule{
	{pkg: "gateway", allow: []string{"gateway"}, stdlibOnly: true},
	{pkg: "adapters/internal/", allow: []string{"gateway", "adapters/internal/"}},
	// mdns hands the boards it finds to a callback; cmd turns them into
	// pending devices, so it needs nothing of the module.
	{pkg: "adapters/mdns", allow: nil},
	{pkg: "adapters/", allow: []string{"gateway", "adapters/internal/", "internal/"}},
	{pkg: "web", allow: []string{"gateway", "web", "internal/"}},
	{pkg: "internal/", allow: []string{"gateway", "internal/", "adapters/", "web", "cmd/"}},
	{pkg: "cmd/", allow: []string{"gateway", "adapters/", "web", "internal/"}},
	// The firmware's tests build ESP32 app images with the gateway's own
	// image package, so the image they flash is one the gateway accepts.
	{pkg: "firmware", allow: []string{"internal/", "adapters/ota/espimage"}},
	{pkg: "deploy", allow: []string{"internal/"}},
}

// allowed reports whether a package governed by r may import dep (both
// module-relative). A prefix ending in "/" matches the packages below it; any
// other names one package and its subpackages. A package may always import
// its own subpackages.
func (r importRule) allowed(rel, dep string) bool {
	if strings.HasPrefix(dep, rel+"/") {
		return true
	}
	for _, a := range r.allow {
		if !matches(dep, a) {
			continue
		}
		// adapters/X may not import adapters/Y: they meet only in
		// adapters/internal and in cmd.
		if r.pkg == "adapters/" && strings.HasPrefix(dep, "adapters/") && !strings.HasPrefix(dep, "adapters/internal/") {
			return strings.SplitN(dep, "/", 3)[1] == strings.SplitN(rel, "/", 3)[1]
		}
		return true
	}
	return false
}

func matches(pkg, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(pkg, prefix)
	}
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

func ruleFor(rel string) (importRule, bool) {
	for _, r := range importTable {
		if matches(rel, r.pkg) {
			return r, true
		}
	}
	return importRule{}, false
}

func goList(t *testing.T, args ...string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, append([]string{"list"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// testOnly may be imported by any package's tests, beside what its rule
// allows: the shared test parts, and the simulated board as a real peer.
var testOnly = []string{"internal/", "adapters/sim"}

// TestImportTable enforces importTable on every package of the module; tests
// may also use testOnly.
func TestImportTable(t *testing.T) {
	out := goList(t, "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...")
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, "|", 3)
		if len(f) != 3 || !strings.HasPrefix(f[0], module) {
			continue
		}
		path, imports, testImports := f[0], f[1], f[2]
		rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
		r, ok := ruleFor(rel)
		if !ok {
			t.Errorf("package %s is not in the import table; add a rule", rel)
			continue
		}
		seen++
		for _, imp := range strings.Fields(imports) {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !r.allowed(rel, dep) {
				t.Errorf("%s imports %s: not allowed by the import table (rule %q)", rel, dep, r.pkg)
			}
		}
		for _, imp := range strings.Fields(testImports) {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if dep == rel || r.allowed(rel, dep) || slices.ContainsFunc(testOnly, func(a string) bool { return matches(dep, a) }) {
				continue
			}
			t.Errorf("%s's tests import %s: not allowed by the import table (rule %q)", rel, dep, r.pkg)
		}
	}
	if seen < 10 {
		t.Fatalf("checked only %d packages; go list output:\n%s", seen, out)
	}
}

// TestStandardLibraryOnly enforces the contract's inward dependencies: the
// core imports nothing outside the standard library (no gorilla, paho or
// serial), directly or through another package of this module.
func TestStandardLibraryOnly(t *testing.T) {
	for _, r := range importTable {
		if !r.stdlibOnly {
			continue
		}
		pattern := "./" + strings.TrimSuffix(r.pkg, "/") + "/..."
		out := goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pattern)
		sawSelf := false
		var bad []string
		for _, p := range strings.Fields(out) {
			rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
			if rel == r.pkg || strings.HasPrefix(rel, r.pkg+"/") {
				sawSelf = true
				continue
			}
			bad = append(bad, p)
		}
		if !sawSelf {
			t.Fatalf("go list did not list %s itself; output:\n%s", r.pkg, out)
		}
		if len(bad) > 0 {
			t.Errorf("%s must import only the standard library; it depends on:\n  %s", r.pkg, strings.Join(bad, "\n  "))
		}
	}
}

// TestImportRules checks the table's own logic on known good and bad pairs,
// so a broken matcher cannot pass every package silently.
func TestImportRules(t *testing.T) {
	tests := []struct {
		pkg, dep string
		want     bool
	}{
		{"gateway", "gateway/wire", true},
		{"gateway/wire", "gateway", true},
		{"gateway", "adapters/sim", false},
		{"web", "adapters/sim", false},
		{"web", "gateway/wire", true},
		{"adapters/wsdial", "web", false},
		{"adapters/wsdial", "adapters/wslisten", false},
		{"adapters/wsdial", "adapters/internal/boardlink", true},
		{"adapters/wsdial", "gateway/wire", true},
		{"adapters/mqttbridge", "adapters/mqttbridge/hadiscovery", true},
		{"adapters/mdns", "gateway", false},
		{"adapters/mdns", "internal/backoff", false},
		{"adapters/mdns", "adapters/mdns/sub", true},
		{"adapters/internal/boardlink", "adapters/wsdial", false},
		{"adapters/internal/boardlink", "gateway", true},
		{"cmd/esp32gw", "adapters/wsdial", true},
		{"cmd/esp32gw", "cmd/other", false},
	}
	for _, tt := range tests {
		r, ok := ruleFor(tt.pkg)
		if !ok {
			t.Fatalf("no rule for %s", tt.pkg)
		}
		if got := r.allowed(tt.pkg, tt.dep); got != tt.want {
			t.Errorf("%s → %s: allowed = %v, want %v", tt.pkg, tt.dep, got, tt.want)
		}
	}
}
