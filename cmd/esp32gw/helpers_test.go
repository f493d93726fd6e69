package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noEnv is an empty environment.
func noEnv(string) string { return "" }

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(strings.TrimPrefix(yaml, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
