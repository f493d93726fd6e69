package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/internal/configfile"
	"github.com/esp32gw/esp32gw/internal/statedir"
)

// tokenCheckEvery is how often a running gateway looks at its token file:
// esp32gw token -rotate takes effect within this (SIGHUP checks at once).
const tokenCheckEvery = time.Second

// tokenFlags is the token subcommand: print the login URL, reading or
// creating the token in state_dir as the gateway does; -rotate writes a new
// one, which a running gateway picks up within tokenCheckEvery.
func tokenFlags(fs *flag.FlagSet) func(context.Context, cli) error {
	rotate := fs.Bool("rotate", false, "token: write a new random token; the old one and cookies made from it stop working")
	viewer := fs.Bool("viewer", false, "token: print a read-only login URL (not supported yet)")
	return func(_ context.Context, c cli) error { return printToken(c, *rotate, *viewer) }
}

func printToken(c cli, rotate, viewer bool) error {
	if viewer {
		return errors.New("token -viewer: read-only (viewer) logins are not supported yet; they come with sessions in a later release")
	}
	cfg, err := configfile.Load(c.configPath)
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.HTTP.TLS.Cert != "" {
		scheme = "https"
	}
	host, lan, port := dashboardHosts(cfg.HTTP.Listen)
	if lan != "" {
		host = lan // the URL is for another machine on the LAN
	}
	base := fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(host, port))
	switch {
	case cfg.HTTP.Auth == "none":
		if rotate {
			return fmt.Errorf("token -rotate: %s has http.auth: none; there is no token to rotate", c.configPath)
		}
		fmt.Fprintf(c.stderr, "%s has http.auth: none: the dashboard needs no token\n", c.configPath)
		fmt.Fprintln(c.stdout, base)
		return nil
	case rotate && cfg.HTTP.Token != "":
		return fmt.Errorf("token -rotate: http.token is set in %s, which is the token's source: change it there, then systemctl reload esp32gw", c.configPath)
	}
	dir := statedir.New(c.configPath, cfg.StateDir, nil)
	var token string
	if rotate {
		if token, err = dir.RotateToken(); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "new token written to %s: a running gateway switches to it within %v; the old token and its logins no longer work\n", dir.TokenPath(), tokenCheckEvery)
	} else if token, _, err = dir.Token(cfg.HTTP); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s?token=%s\n", base, token)
	return nil
}

// tokenWatch is a running gateway's view of its token file, so a token
// written by esp32gw token -rotate takes effect without a restart.
type tokenWatch struct {
	mu    sync.Mutex
	path  string      // the token file; "" when the token is not from it
	token string      // the token in force
	seen  os.FileInfo // the file as last read; nil: read it next time
}

// watchToken starts looking at the token file every tokenCheckEvery, when
// the token came from it (not from the config, not auth: none).
func (g *runningGateway) watchToken(ctx context.Context) {
	g.ctl.tokens.mu.Lock()
	g.ctl.tokens.token = g.token
	if g.cfg.HTTP.Auth != "none" && g.tokenAt != "" && g.tokenAt != "config" {
		g.ctl.tokens.path = g.tokenAt
	}
	on := g.ctl.tokens.path != ""
	g.ctl.tokens.mu.Unlock()
	if !on {
		return
	}
	g.workers.Go(func() {
		t := time.NewTicker(tokenCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				g.checkTokenFile()
			}
		}
	})
}

// checkTokenFile re-reads the token file when it changed and, when it
// holds a new token, makes that the only one accepted.
func (g *runningGateway) checkTokenFile() {
	w := &g.ctl.tokens
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.path == "" {
		return
	}
	fi, err := os.Stat(w.path)
	if err != nil {
		return // removed: the token in force stays until a new file appears
	}
	if w.seen != nil && os.SameFile(w.seen, fi) && fi.ModTime().Equal(w.seen.ModTime()) && fi.Size() == w.seen.Size() {
		return
	}
	b, err := os.ReadFile(w.path)
	if err != nil {
		g.log.Warn("token file not read", "token_file", w.path, "err", err)
		return
	}
	w.seen = fi
	t := strings.TrimSpace(string(b))
	if t == "" || t == w.token {
		return
	}
	w.token = t
	g.web.SetToken(t)
	g.log.Info("new login token from the token file; the old token and its logins no longer work", "token_file", w.path)
}

// setToken makes t the only token accepted (a reloaded http.token).
func (g *runningGateway) setToken(t string) {
	g.ctl.tokens.mu.Lock()
	g.ctl.tokens.token = t
	g.ctl.tokens.mu.Unlock()
	g.web.SetToken(t)
}
