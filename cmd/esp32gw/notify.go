package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/esp32gw/esp32gw/internal/sdnotify"
)

// statusEvery is how often the systemd status line is recomputed; it is
// sent only when it changed.
const statusEvery = 2 * time.Second

// stallHubEnv is a test hook, read only by runGateway: a duration after
// which the gateway makes its own hub hold its lock until shutdown, so
// tests can see the watchdog pings stop as they would with a deadlocked
// hub. Never set it outside tests.
const stallHubEnv = "ESP32GW_TEST_STALL_HUB_AFTER"

// testStallAfter reads stallHubEnv: 0 when unset or unusable.
func testStallAfter(getenv func(string) string, log *slog.Logger) time.Duration {
	v := getenv(stallHubEnv)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		log.Warn("ignoring "+stallHubEnv, "value", v)
		return 0
	}
	log.Warn("test hook: the hub will stall", "after", d)
	return d
}

// sessionTTLEnv is a test hook, read only by runGateway: how long a login
// session lasts unused instead of 30 days, so tests can see one expire.
// Never set it outside tests.
const sessionTTLEnv = "ESP32GW_TEST_SESSION_TTL"

// testSessionTTL reads sessionTTLEnv: 0 (the default) when unset or unusable.
func testSessionTTL(getenv func(string) string, log *slog.Logger) time.Duration {
	v := getenv(sessionTTLEnv)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		log.Warn("ignoring "+sessionTTLEnv, "value", v)
		return 0
	}
	log.Warn("test hook: login sessions end when unused for", "ttl", d)
	return d
}

// started is called by run once the listener is bound and every board
// transport has started: READY=1, then the watchdog and status loop, and
// the test stall if asked for.
func (g *runningGateway) started(ctx context.Context) {
	if err := g.ctl.notify.Ready(); err != nil {
		g.log.Warn("sd_notify READY", "err", err)
	}
	g.watchToken(ctx)
	if g.ctl.notify.Enabled() {
		g.workers.Go(func() { g.notifyLoop(ctx) })
	}
	if d := g.ctl.stallAfter; d > 0 {
		g.workers.Go(func() {
			select {
			case <-ctx.Done():
			case <-time.After(d):
				g.hub.Stall(ctx) // until shutdown
			}
		})
	}
}

// notifyLoop sends WATCHDOG=1 every WatchdogInterval, each only after the
// hub answered (Hub.Alive), so a stuck hub stops the pings and systemd
// restarts the gateway; and STATUS= whenever the summary changes. It
// returns when ctx ends.
func (g *runningGateway) notifyLoop(ctx context.Context) {
	n := g.ctl.notify
	var watchdog <-chan time.Time
	every := n.WatchdogInterval()
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		watchdog = t.C
	}
	status := time.NewTicker(statusEvery)
	defer status.Stop()
	last := ""
	sendStatus := func() {
		if s := g.statusLine(); s != last {
			last = s
			if err := n.Status(s); err != nil {
				g.log.Debug("sd_notify STATUS", "err", err)
			}
		}
	}
	sendStatus()
	stuck := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-status.C:
			// A stuck hub would hold the status line too: ask first.
			actx, cancel := context.WithTimeout(ctx, time.Second)
			if g.hub.Alive(actx) == nil {
				sendStatus()
			}
			cancel()
		case <-watchdog:
			// Half the interval: an answer later than that is a hub too
			// slow to trust, and the next tick comes on time.
			actx, cancel := context.WithTimeout(ctx, every/2)
			err := g.hub.Alive(actx)
			cancel()
			switch {
			case err == nil:
				if stuck {
					g.log.Warn("hub answers again; watchdog pings resumed")
					stuck = false
				}
				if err := n.Watchdog(); err != nil {
					g.log.Debug("sd_notify WATCHDOG", "err", err)
				}
			case ctx.Err() != nil:
				return
			case !stuck:
				stuck = true
				g.log.Error("hub is not answering: watchdog pings stopped, systemd will restart the gateway", "err", err)
			}
		}
	}
}

// statusLine is the one line systemctl status shows.
func (g *runningGateway) statusLine() string {
	online, _ := g.hub.Boards()
	return fmt.Sprintf("%s online, %s", plural(online, "board"), plural(g.web.Browsers(), "browser"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// stopping tells systemd that shutdown has begun.
func (g *runningGateway) stopping() {
	if err := g.ctl.notify.Stopping(); err != nil {
		g.log.Debug("sd_notify STOPPING", "err", err)
	}
}

// control is what runGateway hands the running gateway beyond its config:
// systemd notification, the reload signal, the test stall. Its zero value
// (tests that call build and run directly) sends nothing and never reloads.
type control struct {
	configPath string
	notify     *sdnotify.Notifier
	reloads    <-chan os.Signal // one receive per SIGHUP
	stallAfter time.Duration    // test hook (stallHubEnv); 0: off

	tokens tokenWatch // set up by run (token.go)
}
