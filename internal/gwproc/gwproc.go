// Package gwproc holds what the tools that run the gateway as a child
// process (cmd/esp32gw-load, cmd/esp32gw-soak, cmd/esp32gw-otaload) and the
// tests that do share: building the binary from the checkout, a free
// loopback address, a random token, process attributes that tie the child's
// life to the tool, and reading its memory and CPU time from /proc. It
// starts no goroutines.
package gwproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// BuildGateway builds ./cmd/esp32gw of the module in the working directory
// into dir and returns the binary's path.
func BuildGateway(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("build the gateway: not inside the esp32gw module; run from the repository or pass -gateway PATH")
	}
	bin := filepath.Join(dir, "esp32gw")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/esp32gw")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/esp32gw: %w\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr picks a free loopback address ("127.0.0.1:PORT") for a program
// to bind a moment later. The port comes from below Linux's ephemeral range
// (32768 and up): a port the kernel hands out as the source of outgoing
// connections could be taken by one of them in between (seen under
// parallel tests).
func FreeAddr() (string, error) {
	for range 200 {
		port := 20000 + mathrand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return "127.0.0.1:" + strconv.Itoa(port), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// RandomToken is 128 random bits in hex.
func RandomToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
