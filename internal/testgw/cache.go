package testgw

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The binary cache: `go test ./...` runs one test process per package, and
// several of them start the gateway. Each would otherwise build (and, with
// -race, link for seconds) the same binary. Instead the first process to need
// it builds it into a directory shared by all of them, named by a hash of
// everything the build depends on; the others wait on a file lock and reuse
// it. A changed source file changes the hash, so a stale binary is never
// used. Entries unused for a day are removed.

// cacheMaxAge is how long an unused cache entry is kept (a changed tree or Go
// version leaves the old binary behind).
const cacheMaxAge = 24 * time.Hour

// cacheDir is shared by the test processes of one user.
func cacheDir() string {
	if d := os.Getenv("ESP32GW_TESTGW_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("esp32gw-testgw-%d", os.Getuid()))
}

// cachedBuild returns the cached binary for the module at root, building it
// first under the cache lock when no process has yet.
func cachedBuild(root string) (string, error) {
	key, err := buildKey(root)
	if err != nil {
		return "", fmt.Errorf("testgw: hash the source tree: %w", err)
	}
	dir := cacheDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("testgw: cache dir: %w", err)
	}
	bin := filepath.Join(dir, "esp32gw-"+key)
	if _, err := os.Stat(bin); err == nil { // complete: it was renamed into place
		touch(bin)
		return bin, nil
	}

	// One builder per key; the others block here until it is done. The
	// kernel drops the lock if the builder dies, so it is never stale.
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("testgw: cache lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("testgw: cache lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(bin); err == nil { // another process built it meanwhile
		touch(bin)
		return bin, nil
	}

	tmp, err := os.CreateTemp(dir, "build-*")
	if err != nil {
		return "", fmt.Errorf("testgw: cache: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	args := []string{"build", "-o", tmp.Name()}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/esp32gw")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testgw: go %s (in %s) failed: %v\n%s", strings.Join(args, " "), root, err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("testgw: cache: %w", err)
	}
	fmt.Fprintf(os.Stderr, "testgw: built esp32gw in %.1fs (cached as %s)\n", time.Since(start).Seconds(), bin)
	prune(dir, bin)
	return bin, nil
}

// buildKey hashes what the binary is built from: every non-test Go file of
// the module, go.mod and go.sum, the dashboard assets web/static embeds, and
// the Go version, platform, race flag and build-related environment.
func buildKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "go=%s os=%s arch=%s race=%v\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, raceEnabled)
	for _, env := range []string{"GOFLAGS", "CGO_ENABLED", "GOEXPERIMENT", "GOAMD64", "GOARM", "CC"} {
		fmt.Fprintf(h, "%s=%s\n", env, os.Getenv(env))
	}
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() {
			// What the go command ignores, and what it never builds from.
			if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || rel == "firmware" || rel == "data") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"),
			rel == "go.mod", rel == "go.sum",
			strings.HasPrefix(rel, "web/static/"):
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	for _, rel := range files {
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", rel)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// touch marks a cache entry as used, so prune keeps it.
func touch(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
}

// prune removes cache entries (and their lock files) unused for cacheMaxAge,
// and build leftovers of that age. A process still running an old binary is
// unaffected: an unlinked executable keeps running.
func prune(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if path == keep || path == keep+".lock" {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > cacheMaxAge {
			os.Remove(path)
		}
	}
}
