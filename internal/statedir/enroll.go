package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// enrollTokenFile holds the generated enroll token: the secret a new board
// presents on its first dial-in to be held for adoption (DESIGN.md, Fleet).
const enrollTokenFile = "enroll_token"

// EnrollTokenPath is the path of the generated enroll token's file.
func (d Dir) EnrollTokenPath() string { return filepath.Join(d.path, enrollTokenFile) }

// EnrollToken returns the enroll token and where it came from: "config"
// when configured is set, else the enroll_token file's path. With none
// configured, the first start generates one and keeps it (mode 0600, like
// the browser token); generated reports that it was made just now, so the
// caller logs the token itself only that once. A damaged file is kept
// aside (enroll_token.corrupt-TIMESTAMP) and a new token generated.
func (d Dir) EnrollToken(configured string) (token, source string, generated bool, err error) {
	if configured != "" {
		return configured, "config", false, nil
	}
	path := d.EnrollTokenPath()
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); validToken(t) {
			return t, path, false, nil
		}
		d.keepAside(path, "enroll_token file is damaged: a new enroll token is generated")
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", false, fmt.Errorf("read enroll token: %w", err)
	}
	if token, err = newToken(); err != nil {
		return "", "", false, err
	}
	if err := d.writeSecret(enrollTokenFile, token); err != nil {
		return "", "", false, err
	}
	return token, path, true, nil
}
