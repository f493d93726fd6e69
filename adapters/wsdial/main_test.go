package wsdial

import (
	"os"
	"testing"

	"github.com/esp32gw/esp32gw/internal/testutil"
)

// TestMain fails the package when a goroutine any of its tests started is
// still running after the last one.
func TestMain(m *testing.M) { os.Exit(testutil.CheckMain(m)) }
