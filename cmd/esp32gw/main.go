// Command esp32gw is the gateway: it loads config.yaml, builds the hub,
// starts one transport per board, serves browsers, the API and MQTT, and
// shuts all of it down in order on SIGINT/SIGTERM.
//
// This file is the command line: flags and the subcommand table.
// gateway.go builds, runs and shuts down the gateway itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/esp32gw/esp32gw/adapters/serialport"
	"github.com/esp32gw/esp32gw/internal/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "esp32gw:", err)
		os.Exit(1)
	}
}

// cli is what every subcommand gets: the common flags and the process's
// outside world, passed explicitly so tests can run any subcommand in-process.
type cli struct {
	configPath string
	logLevel   string
	getenv     func(string) string // the environment (NOTIFY_SOCKET and the like)
	args       []string            // the subcommand's positional arguments (its nargs)
	stdout     io.Writer
	stderr     io.Writer
}

// subcommand is one row of the command table. A new subcommand is one more
// row and its function.
type subcommand struct {
	name string
	args string // shown after the name in the usage text
	help string
	// nargs is how many positional arguments follow the flags.
	nargs int
	// flags defines the subcommand's own flags on fs (beyond -config and
	// -log-level) and returns the function that runs it once they are
	// parsed. Own flags go after the subcommand's name.
	flags func(fs *flag.FlagSet) func(ctx context.Context, c cli) error
}

// noFlags is the flags function of a subcommand that has none of its own.
func noFlags(run func(ctx context.Context, c cli) error) func(*flag.FlagSet) func(context.Context, cli) error {
	return func(*flag.FlagSet) func(context.Context, cli) error { return run }
}

// subcommands is the command table; the first row is what runs without a
// subcommand.
func subcommands() []subcommand {
	return []subcommand{
		{name: "run", args: "[-config FILE] [-log-level LEVEL]", help: "run the gateway", flags: noFlags(runGateway)},
		{name: "check", args: "[-config FILE]", help: "validate the config and exit", flags: noFlags(checkConfig)},
		{name: "token", args: "[-config FILE] [-rotate] [-viewer]", help: "print the login URL; -rotate makes a new token and ends every session; -viewer prints a read-only login URL", flags: tokenFlags},
		{name: "ports", help: "list serial ports and their USB identity", flags: noFlags(listPorts)},
		{name: "backup", args: "[-config FILE] BACKUP.db", help: "copy the history database (safe while running)", nargs: 1, flags: noFlags(backupHistory)},
		{name: "version", help: "print the version", flags: noFlags(printVersion)},
	}
}

// run is the whole program; main only adds signals, the environment and the
// exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	table := subcommands()
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("esp32gw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := cli{getenv: getenv, stdout: stdout, stderr: stderr}
	fs.StringVar(&c.configPath, "config", "config.yaml", "config file")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() { usage(stderr, fs, table) }

	var sub *subcommand
	pick := func() error {
		if name == "" {
			name = table[0].name
		}
		for i := range table {
			if table[i].name == name {
				sub = &table[i]
				return nil
			}
		}
		var names []string
		for _, s := range table[1:] {
			names = append(names, s.name)
		}
		return fmt.Errorf("unknown command %q (want %s, or nothing to run)", name, strings.Join(names, ", "))
	}
	var runSub func(context.Context, cli) error
	if name != "" {
		if err := pick(); err != nil {
			return err
		}
		runSub = sub.flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rest := fs.Args()
	if name == "" { // flags first: esp32gw -config x.yaml check
		if len(rest) > 0 {
			name, rest = rest[0], rest[1:]
		}
		if err := pick(); err != nil {
			return err
		}
		runSub = sub.flags(fs)
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
	}
	if len(rest) > sub.nargs {
		return fmt.Errorf("unexpected argument %q (see esp32gw -h)", rest[sub.nargs])
	}
	c.args = rest
	return runSub(ctx, c)
}

func usage(w io.Writer, fs *flag.FlagSet, table []subcommand) {
	fmt.Fprintln(w, "usage:")
	for i, s := range table {
		line := "esp32gw " + s.name
		if i == 0 {
			line = "esp32gw" // the default needs no name
		}
		if s.args != "" {
			line += " " + s.args
		}
		fmt.Fprintf(w, "  %-42s  %s\n", line, s.help)
	}
	fs.PrintDefaults()
}

func checkConfig(_ context.Context, c cli) error {
	cfg, err := loadConfig(c.configPath, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: OK (%d devices)\n", c.configPath, len(cfg.Devices))
	return nil
}

func listPorts(_ context.Context, c cli) error { return serialport.PrintPorts(c.stdout) }

func printVersion(_ context.Context, c cli) error {
	fmt.Fprintln(c.stdout, "esp32gw", versionString())
	return nil
}

// runGateway runs the gateway until ctx ends (SIGINT, SIGTERM), then shuts
// it down in order.
func runGateway(ctx context.Context, c cli) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	// SIGHUP reloads; caught before anything else, as its default would
	// end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	notifier, err := sdnotify.New(c.getenv)
	if err != nil {
		log.Warn("systemd notification partly off", "err", err)
	}
	cfg, err := loadConfig(c.configPath, "")
	if err != nil {
		return err
	}
	g, err := build(cfg, c.configPath, log, testSessionTTL(c.getenv, log))
	if err != nil {
		return err
	}
	g.ctl.configPath = c.configPath
	g.ctl.notify = notifier
	g.ctl.reloads = hup
	g.ctl.stallAfter = testStallAfter(c.getenv, log)
	err = g.run(ctx)
	g.shutdown(shutdownBudget)
	return err
}

func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if v == "" {
		v = "dev"
		if ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += "-" + s.Value[:12]
				}
			}
		}
	}
	if ok {
		v += " (" + info.GoVersion + ")"
	}
	return v
}
