package statedir

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// TokenPath is the path of the generated browser token's file.
func (d Dir) TokenPath() string { return filepath.Join(d.path, tokenFile) }

// RotateToken replaces the token file with a new random token and returns
// it. The file is replaced atomically (a running gateway never reads half a
// token) with mode 0600.
func (d Dir) RotateToken() (string, error) {
	token, err := newToken()
	if err != nil {
		return "", err
	}
	if err := d.writeToken(token); err != nil {
		return "", err
	}
	return token, nil
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
func (d Dir) writeToken(token string) error {
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	path := d.TokenPath()
	if err := writeFileAtomic(path, []byte(token+"\n")); err != nil { // CreateTemp: mode 0600
		return fmt.Errorf("write token: %w", err)
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
