package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/buildinfo"
	"github.com/slipway/slipway/server"
)

const usage = `Usage:
  slipway serve [--config FILE]   serve the registry (no FILE: built-in defaults)
  slipway passwd [--cost N]       print the bcrypt hash of the password on stdin,
                                  for auth.users[].password_hash
  slipway promote SOURCE --to STAGE [--tag TAG] [--expect-digest D]
                [--expect-previous D|none] [--reason TEXT] [--json]
                                  promote an image (staging/app:1.4.2) to a stage
  slipway history [APP] [--tag T] [--stage S] [--limit N] [--json]
                                  the promotion ledger, newest first
  slipway rollback ID [--reason TEXT] [--json]
                                  re-point a promotion's tag to its previous digest
  slipway release create --to STAGE [--reason TEXT] SOURCE[=TAG]...
  slipway release show ID | list | rollback ID
                                  several images into a stage together, all or
                                  none (slipway release help)
  slipway gc [--dry-run] [--config FILE] [--grace D]
                                  one garbage collection on the configured storage,
                                  while the replicas keep serving
  slipway import --from FOLDER|s3://BUCKET/ROOTDIR [--from-endpoint URL]
                [--repositories GLOB] [--stage-map OLD/=NEW/]... [--dry-run]
                [--verify] [--overwrite-mutable] [--keep-going=false]
                [--mode=auto|copy] [--config FILE]
                                  import a stock registry's storage (registry:2/3):
                                  every repository, tag, manifest and blob; JSON
                                  summary on stdout; rerun to resume or catch up
  slipway healthcheck [--config FILE] [--url URL] [--timeout D]
                                  exit 0 if /healthz answers 200 (default: on
                                  loopback, at the port of http.addr), else 1
  slipway version                 print the version

promote, history, rollback and release call the server at $SLIPWAY_URL as
$SLIPWAY_USER with $SLIPWAY_PASSWORD (a robot: robot$NAME and its secret),
or, in a CI job, with its OIDC ID token in $SLIPWAY_ID_TOKEN (see the
server's auth.oidc.trust).
`

// run is the whole command line; it returns the process exit code. ctx ends
// on SIGTERM/SIGINT.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env config.LookupEnv) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, env)
	case "passwd":
		return passwd(args[1:], stdin, stdout, stderr)
	case "promote":
		return promoteCmd(ctx, args[1:], stdout, stderr, env)
	case "history":
		return historyCmd(ctx, args[1:], stdout, stderr, env)
	case "rollback":
		return rollbackCmd(ctx, args[1:], stdout, stderr, env)
	case "release":
		return releaseCmd(ctx, args[1:], stdout, stderr, env)
	case "gc":
		return gcCmd(ctx, args[1:], stdout, stderr, env)
	case "import":
		return importCmd(ctx, args[1:], stdout, stderr, env)
	case "healthcheck":
		return healthcheckCmd(ctx, args[1:], stdout, stderr, env)
	case "version":
		fmt.Fprintf(stdout, "slipway %s %s\n", buildinfo.Version(), runtime.Version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "slipway: unknown command %q\n%s", args[0], usage)
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("serve", "", stderr)
	path := configFlag(fl)
	cfg, code, ok := loadConfig(fl, path, args, stderr, env)
	if !ok {
		return code
	}
	logger := server.NewLogger(stderr, cfg.Log.SlogLevel())
	srv, err := server.New(cfg, logger)
	if err == nil {
		stop := reloadOnHangup(ctx, srv)
		err = srv.Run(ctx)
		stop()
	}
	if err != nil {
		fmt.Fprintf(stderr, "slipway: %s\n", err)
		return 1
	}
	return 0
}

// reloadOnHangup reloads the server's TLS certificate on each SIGHUP until
// ctx ends or the returned stop is called. While serving, SIGHUP never
// kills the process.
func reloadOnHangup(ctx context.Context, srv *server.Server) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				srv.ReloadTLS(ctx)
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// configFlag adds --config to a subcommand's flags.
func configFlag(fl *flag.FlagSet) *string {
	return fl.String("config", "", "YAML configuration `file` (default: built-in defaults)")
}

// loadConfig parses a subcommand's flags (no positional arguments) and
// loads the configuration --config names. When it returns false the
// caller exits with code: 0 after -h, 2 after a usage error, 1 for an
// invalid configuration (each already printed).
func loadConfig(fl *flag.FlagSet, path *string, args []string, stderr io.Writer, env config.LookupEnv) (config.Config, int, bool) {
	if code, ok := parseFlags(fl, args); !ok {
		return config.Config{}, code, false
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fl.Name(), fl.Arg(0))
		return config.Config{}, 2, false
	}
	cfg, err := config.Load(*path, env)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%s\n", fl.Name(), err)
		return config.Config{}, 1, false
	}
	return cfg, 0, true
}

// newFlags is a subcommand's flag set, printing to stderr; usage (the
// arguments after "slipway CMD") heads its help.
func newFlags(cmd, usage string, stderr io.Writer) *flag.FlagSet {
	fl := flag.NewFlagSet("slipway "+cmd, flag.ContinueOnError)
	fl.SetOutput(stderr)
	if usage != "" {
		fl.Usage = func() {
			fmt.Fprintf(stderr, "Usage: slipway %s %s\n", cmd, usage)
			fl.PrintDefaults()
		}
	}
	return fl
}

// parseFlags parses a subcommand's flags. When it returns false the caller
// exits with code: 0 after -h, 2 after a usage error (already printed).
func parseFlags(fl *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}
