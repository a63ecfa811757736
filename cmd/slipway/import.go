package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/importer"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/server"
	"github.com/slipway/slipway/storage"
)

const importUsage = "--from FOLDER|s3://BUCKET/ROOTDIR [--from-endpoint URL] [--repositories GLOB]\n" +
	"       [--stage-map OLD/=NEW/]... [--dry-run] [--verify] [--overwrite-mutable] [--keep-going=true]\n" +
	"       [--mode=auto|copy] [--parallel N] [--config FILE]"

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// importFlags are `slipway import`'s options.
type importFlags struct {
	from, endpoint, repos, mode string
	stageMap                    stringList
	dryRun, verify, overwrite   bool
	keepGoing                   bool
	parallel                    int
}

// importCmd imports a stock registry's storage into Slipway's
// (docs/architecture.md §7): a progress line on stderr when it is a
// terminal, the JSON summary on stdout. Exit 0, 1 with problems (or a
// failure), 2 for a usage error.
func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("import", importUsage, stderr)
	path := configFlag(fl)
	var f importFlags
	fl.StringVar(&f.from, "from", "", "the stock registry's storage: its rootdirectory `FOLDER`, or s3://BUCKET/ROOTDIR")
	fl.StringVar(&f.endpoint, "from-endpoint", "", "S3 endpoint `URL` of an s3:// source (default: storage.s3.endpoint)")
	fl.StringVar(&f.repos, "repositories", "", "import only stock repositories matching `GLOB` (path.Match: '*' stops at '/')")
	fl.Var(&f.stageMap, "stage-map", "rename repositories: `OLD/=NEW/` (a prefix), OLD=NEW (one name); repeatable")
	fl.BoolVar(&f.dryRun, "dry-run", false, "write nothing; report what would be imported, bytes and conflicts")
	fl.BoolVar(&f.verify, "verify", false, "rehash every blob to import first; a mismatch is reported and not imported")
	fl.BoolVar(&f.overwrite, "overwrite-mutable", false, "re-point tags Slipway has with another digest (never in an immutable stage)")
	fl.BoolVar(&f.keepGoing, "keep-going", true, "report a problem and go on with the rest (false: stop at the first)")
	fl.StringVar(&f.mode, "mode", "auto", "auto (reference the stock data in place when in Slipway's own bucket) or copy")
	fl.IntVar(&f.parallel, "parallel", 4, "blobs imported (and verified) at once")
	cfg, code, ok := loadConfig(fl, path, args, stderr, env)
	if !ok {
		return code
	}
	if msg := f.usageError(); msg != "" {
		fmt.Fprintf(stderr, "slipway import: %s\n", msg)
		fl.Usage()
		return 2
	}
	stageMap, err := importer.ParseStageMap(f.stageMap)
	if err != nil {
		fmt.Fprintf(stderr, "slipway import: %s\n", err)
		return 2
	}
	src, err := openSource(ctx, f, cfg.Storage, env)
	if err != nil {
		fmt.Fprintf(stderr, "slipway import: %s\n", err)
		return 1
	}
	store, err := openDestination(ctx, cfg.Storage)
	if err != nil {
		fmt.Fprintf(stderr, "slipway import: %s\n", err)
		return 1
	}
	regOpts := registry.Options{Logger: server.NewLogger(stderr, cfg.Log.SlogLevel())}
	if v, ok := store.(storage.BucketViewer); ok {
		// As the server's registry: imported outside data is readable.
		regOpts.BucketView = v.BucketView()
	}
	reg := registry.New(store, regOpts)
	opts := importer.Options{
		Source: src.store, SourceName: src.name, Registry: reg, Store: store, Stages: cfg.Stages,
		Tagger:       promote.New(store, reg.Metadata(), promote.Options{Stages: cfg.Stages, Logger: server.NewLogger(stderr, cfg.Log.SlogLevel())}),
		Actor:        actor(env),
		Repositories: f.repos, StageMap: stageMap, DryRun: f.dryRun, Verify: f.verify,
		OverwriteMutable: f.overwrite, StopAtFirstProblem: !f.keepGoing, Parallel: f.parallel,
		Progress: &importer.Progress{},
	}
	switch opts.Reference, err = referenceMode(f, src, cfg.Storage, store); {
	case errors.Is(err, errNoBucketView):
		fmt.Fprintf(stderr, "slipway import: note: %s\n", err)
	case err != nil:
		fmt.Fprintf(stderr, "slipway import: %s\n", err)
		return 1
	}
	if opts.Reference != nil {
		fmt.Fprintln(stderr, "slipway import: same bucket: Slipway's blobs will name the stock registry's data in place (no byte moves); "+
			"the stock registry's garbage collector must not free them while Slipway serves them (--mode=copy makes Slipway independent)")
	}
	stop := func() {}
	if isTerminal(stderr) {
		stop = importer.ShowProgress(ctx, stderr, opts.Progress, 500*time.Millisecond)
	}
	sum, err := importer.Run(ctx, opts)
	stop()
	if err != nil {
		fmt.Fprintf(stderr, "slipway import: %s\n", err)
		if sum.Source == "" {
			return 1 // nothing ran: no summary
		}
	}
	printJSON(stdout, sum)
	if err != nil || sum.ProblemsTotal > 0 {
		return 1
	}
	return 0
}

// usageError checks the flags that need no I/O.
func (f importFlags) usageError() string {
	switch {
	case f.from == "":
		return "--from is required"
	case f.mode != "auto" && f.mode != "copy":
		return fmt.Sprintf("--mode must be auto or copy, got %q", f.mode)
	case f.parallel < 1 || f.parallel > 256:
		return fmt.Sprintf("--parallel must be 1 to 256, got %d", f.parallel)
	}
	if _, err := path.Match(f.repos, ""); err != nil {
		return fmt.Sprintf("--repositories %q is not a valid pattern: %s", f.repos, err)
	}
	return ""
}

// openDestination opens Slipway's store as `slipway serve` does and
// checks that it answers.
func openDestination(ctx context.Context, cfg config.Storage) (storage.Store, error) {
	logger := server.NewLogger(io.Discard, 0)
	store, err := server.OpenStore(cfg, logger)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err = store.Ping(pctx)
		cancel()
	}
	if err != nil {
		return nil, fmt.Errorf("the storage of Slipway, %s, is unreachable: %w", storageName(cfg), err)
	}
	return store, nil
}

// actor names who runs the import, for ledger records.
func actor(env config.LookupEnv) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u, ok := env("USER"); ok && u != "" {
		return u
	}
	return "slipway import"
}

// isTerminal reports whether w is a terminal (the progress line is for
// people only).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
