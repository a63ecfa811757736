package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/server"
)

// pingTimeout bounds the first contact with the store: an endpoint that
// does not answer is reported at once, not after the collector's retries.
const pingTimeout = 30 * time.Second

// gcCmd runs one garbage collection on the configured storage while the
// replicas keep serving: a progress line per stage, then a summary.
func gcCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("gc", "[--dry-run] [--gentle] [--config FILE] [--grace DURATION]", stderr)
	path := configFlag(fl)
	dry := fl.Bool("dry-run", false, "report what would be freed, free nothing (also when gc.dry_run is true)")
	gentle := fl.Bool("gentle", false, "yield to the replicas' clients: gc.busy_concurrency store requests in flight, each busy at most gc.busy_share of the time (default: gc.concurrency, no pause)")
	grace := fl.Duration("grace", -1, "objects younger than this `duration` are kept (default: gc.grace)")
	cfg, code, ok := loadConfig(fl, path, args, stderr, env)
	if !ok {
		return code
	}
	fl.Visit(func(f *flag.Flag) {
		if f.Name == "grace" {
			cfg.GC.Grace = *grace
		}
	})
	if cfg.GC.Grace < 0 {
		fmt.Fprintf(stderr, "slipway gc: --grace must be 0 or more, got %s\n", cfg.GC.Grace)
		return 2
	}
	logger := server.NewLogger(stderr, cfg.Log.SlogLevel())
	store, err := server.OpenStore(cfg.Storage, logger)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err = store.Ping(pctx)
		cancel()
	}
	if err != nil {
		fmt.Fprintf(stderr, "slipway gc: storage %s is unreachable: %s\n", storageName(cfg.Storage), err)
		return 1
	}
	opts := server.GCOptions(cfg)
	opts.DryRun = opts.DryRun || *dry
	begun := time.Now()
	stage := 0
	opts.Progress = func(r gc.Report) {
		if !r.Finished.IsZero() {
			return // the summary follows
		}
		stage++
		fmt.Fprintf(stdout, "[%s] %s done: %s\n", time.Since(begun).Round(time.Second), stageName(stage), counts(r))
	}
	mode := ""
	if opts.DryRun {
		mode = " (dry run: nothing is deleted)"
	}
	collect := store
	if *gentle {
		collect = server.GentleStore(cfg.GC, store)
		mode += fmt.Sprintf(", gently: %d requests in flight, each busy %.3g%% of the time", cfg.GC.BusyConcurrency, 100*cfg.GC.BusyShare)
	}
	fmt.Fprintf(stdout, "collecting on %s, grace %s%s\n", storageName(cfg.Storage), cfg.GC.Grace, mode)
	// A failed retention pass does not stop the collection (the
	// collector is correct on whatever tags exist), but the command
	// fails: the operator must see that old tags were not deleted.
	var retErr error
	rep, err := server.CollectOnce(ctx, cfg, store, collect, opts, func(err error) {
		fmt.Fprintf(stderr, "slipway gc: note: %s; running anyway (two collectors are safe, only slower)\n", err)
	}, func(r retention.Report, err error) {
		fmt.Fprintf(stdout, "[%s] %s\n", time.Since(begun).Round(time.Second), r.Summary())
		if err = retentionFailure(r, err); err != nil {
			retErr = err
			fmt.Fprintf(stderr, "slipway gc: retention failed: %s; collecting anyway\n", err)
		}
	})
	took := time.Since(begun).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(stderr, "slipway gc: run %s failed after %s: %s\n", orDash(rep.Run), took, err)
		return 1
	}
	verb := "done"
	if rep.DryRun {
		verb = "dry run done"
	}
	fmt.Fprintf(stdout, "%s: run %s in %s\n  %s\n", verb, rep.Run, took, counts(rep))
	if rep.DryRun && len(rep.Deleted) > 0 {
		fmt.Fprintf(stdout, "  would delete, e.g. %s (GET /api/v1/gc/runs lists up to %d)\n", rep.Deleted[0], gc.MaxListed)
	}
	if retErr != nil {
		fmt.Fprintf(stderr, "slipway gc: the collection finished, retention failed: %s\n", retErr)
		return 1
	}
	return 0
}

// retentionFailure is why a retention pass failed, nil if it did not:
// its error, or its per-repository errors (the pass went on with the
// other repositories, but the command must still fail for the operator
// to see them).
func retentionFailure(r retention.Report, err error) error {
	if err == nil && len(r.Errors) > 0 {
		err = fmt.Errorf("%d repositories failed, the first: %s", len(r.Errors), r.Errors[0])
	}
	return err
}

// stageName names the n-th stage a run reports after (package gc: links,
// then records, then orphan data).
func stageName(n int) string {
	if names := []string{"links", "records", "orphan data"}; n <= len(names) {
		return fmt.Sprintf("stage %d/%d (%s)", n, len(names), names[n-1])
	}
	return fmt.Sprintf("stage %d", n)
}

// counts is a report's numbers in one line.
func counts(r gc.Report) string {
	freed := "freed"
	if r.DryRun {
		freed = "would free"
	}
	return fmt.Sprintf("examined %d objects (%s), %s %d objects (%s), rescued %d",
		r.Examined.Objects, bytesText(r.Examined.Bytes), freed, r.Freed.Objects, bytesText(r.Freed.Bytes), r.Rescued)
}

// storageName says which store the configuration names, for messages.
func storageName(s config.Storage) string {
	if c := s.S3; c != nil {
		return fmt.Sprintf("s3 endpoint %s bucket %s", c.Endpoint, c.Bucket)
	}
	return "folder " + s.Filesystem.Root
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
