package statedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// TokenPath is the path of the generated browser token's file.
func (d Dir) TokenPath() string { return filepath.Join(d.path, tokenFile) }

// ViewerTokenPath is the path of the viewer (read-only) token's file.
func (d Dir) ViewerTokenPath() string { return filepath.Join(d.path, viewerTokenFile) }

// SessionsPath is the path of the login sessions' file (web owns its content).
func (d Dir) SessionsPath() string { return filepath.Join(d.path, sessionsFile) }

// RotateToken replaces the token file with a new random token and returns
// it; a viewer token, if there is one, is replaced first. The files are
// replaced atomically (a running gateway never reads half a token) with
// mode 0600.
func (d Dir) RotateToken() (string, error) {
	if old, err := d.ReadViewerToken(); err != nil {
		return "", err
	} else if old != "" {
		viewer, err := newToken()
		if err != nil {
			return "", err
		}
		if err := d.writeSecret(viewerTokenFile, viewer); err != nil {
			return "", err
		}
	}
	token, err := newToken()
	if err != nil {
		return "", err
	}
	if err := d.writeToken(token); err != nil {
		return "", err
	}
	return token, nil
}

// ReadViewerToken is the viewer token, or "" when none was made yet.
func (d Dir) ReadViewerToken() (string, error) {
	b, err := os.ReadFile(d.ViewerTokenPath())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read viewer token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ViewerToken is the viewer token, made (mode 0600) on first use.
func (d Dir) ViewerToken() (string, error) {
	if t, err := d.ReadViewerToken(); err != nil || t != "" {
		return t, err
	}
	t, err := newToken()
	if err != nil {
		return "", err
	}
	return t, d.writeSecret(viewerTokenFile, t)
}

func newToken() (string, error) {
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(raw[:]), nil
}

// writeToken writes the token file atomically, mode 0600. Run as root
// (sudo esp32gw token), the file gets the state directory's owner, so the
// gateway's own user (esp32gw under systemd) can still read it.
func (d Dir) writeToken(token string) error { return d.writeSecret(tokenFile, token) }

func (d Dir) writeSecret(name, token string) error {
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	path := filepath.Join(d.path, name)
	if err := writeFileAtomic(path, []byte(token+"\n")); err != nil { // CreateTemp: mode 0600
		return fmt.Errorf("write %s: %w", name, err)
	}
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(d.path); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
					return fmt.Errorf("token file owner: %w", err)
				}
			}
		}
	}
	return nil
}
