package main

import (
	"context"
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
// one (and a new viewer token, if there is one), which a running gateway
// picks up within tokenCheckEvery, ending every session; -viewer prints the
// read-only login URL, making the viewer token on first use.
func tokenFlags(fs *flag.FlagSet) func(context.Context, cli) error {
	rotate := fs.Bool("rotate", false, "token: write a new random token (and viewer token); every login and session ends")
	viewer := fs.Bool("viewer", false, "token: print a read-only login URL: its sessions see everything and command nothing")
	return func(_ context.Context, c cli) error { return printToken(c, *rotate, *viewer) }
}

func printToken(c cli, rotate, viewer bool) error {
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
		if rotate || viewer {
			return fmt.Errorf("token: %s has http.auth: none; there are no tokens (every visitor may do everything)", c.configPath)
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
		fmt.Fprintf(c.stderr, "new token written to %s: a running gateway switches to it within %v; the old token, its logins and every session end\n", dir.TokenPath(), tokenCheckEvery)
	} else if token, _, err = dir.Token(cfg.HTTP); err != nil {
		return err
	}
	if viewer {
		if token, err = dir.ViewerToken(); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "read-only login URL (viewer token in %s): it sees everything and may command nothing\n", dir.ViewerTokenPath())
	}
	fmt.Fprintf(c.stdout, "%s?token=%s\n", base, token)
	return nil
}

// tokenWatch is a running gateway's view of its token files, so a token
// written by esp32gw token (-rotate, -viewer) takes effect without a restart.
type tokenWatch struct {
	mu     sync.Mutex
	admin  watchedFile // the token file; path "" when the token is not from it
	viewer watchedFile // the viewer token file; path "" with auth: none
}

// watchedFile is one token file as last read.
type watchedFile struct {
	path  string
	token string      // the token in force
	seen  os.FileInfo // the file as last read; nil: read it next time
}

// watchToken starts looking at the token files every tokenCheckEvery,
// unless auth is none: the token file when the token came from it (not
// from the config), the viewer token file always.
func (g *runningGateway) watchToken(ctx context.Context) {
	if g.cfg.HTTP.Auth == "none" {
		return
	}
	g.ctl.tokens.mu.Lock()
	g.ctl.tokens.admin.token = g.token
	if g.tokenAt != "" && g.tokenAt != "config" {
		g.ctl.tokens.admin.path = g.tokenAt
	}
	g.ctl.tokens.viewer.token = g.viewerToken
	g.ctl.tokens.viewer.path = g.state.ViewerTokenPath()
	g.ctl.tokens.mu.Unlock()
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

// checkTokenFile re-reads the token files that changed; a new token is
// the only one accepted from then on and ends the sessions it made (a new
// admin token: every session).
func (g *runningGateway) checkTokenFile() {
	w := &g.ctl.tokens
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := g.reread(&w.admin); ok {
		g.web.SetToken(t)
		g.log.Info("new login token from the token file; the old token and every session no longer work", "token_file", w.admin.path)
	}
	if t, ok := g.reread(&w.viewer); ok {
		g.web.SetViewerToken(t)
		g.log.Info("new viewer token from its file; read-only logins made before no longer work", "token_file", w.viewer.path)
	}
}

// reread returns f's token when the file holds a new one.
func (g *runningGateway) reread(f *watchedFile) (string, bool) {
	if f.path == "" {
		return "", false
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		return "", false // removed: the token in force stays until a new file appears
	}
	if f.seen != nil && os.SameFile(f.seen, fi) && fi.ModTime().Equal(f.seen.ModTime()) && fi.Size() == f.seen.Size() {
		return "", false
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		g.log.Warn("token file not read", "token_file", f.path, "err", err)
		return "", false
	}
	f.seen = fi
	t := strings.TrimSpace(string(b))
	if t == "" || t == f.token {
		return "", false
	}
	f.token = t
	return t, true
}

// setToken makes t the only token accepted (a reloaded http.token).
func (g *runningGateway) setToken(t string) {
	g.ctl.tokens.mu.Lock()
	g.ctl.tokens.admin.token = t
	g.ctl.tokens.mu.Unlock()
	g.web.SetToken(t)
}
