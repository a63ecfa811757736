package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/storage/fs"
)

// orphan writes a data object no descriptor names, old enough to go
// (uploads.purge_after 24h + grace + 1h).
func orphan(t *testing.T, root string) string {
	t.Helper()
	path := filepath.Join(root, "data", "ab", "ab"+strings.Repeat("1", 62))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("orphan"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-72 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return path
}

func gcRun(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"gc"}, args...), nil, &out, &errb, envOf(env))
	return code, out.String(), errb.String()
}

// A dry run names what would go and deletes nothing; the real run frees
// it. Both print a line per stage and a summary.
func TestGCCommand(t *testing.T) {
	root := t.TempDir()
	path := orphan(t, root)
	env := map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": root}

	code, out, errs := gcRun(t, env, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"(dry run: nothing is deleted)", "stage 1/3 (links) done:", "stage 3/3 (orphan data) done:",
		"dry run done: run ", "would free 1 objects (6 B)", "would delete, e.g. data/ab/ab111"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the dry run deleted the orphan: %v", err)
	}

	code, out, errs = gcRun(t, env, "--grace", "0s")
	if code != 0 {
		t.Fatalf("real run: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"grace 0s\n", "done: run ", "freed 1 objects (6 B), rescued 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the orphan is still there: %v", err)
	}
}

// An unreachable store or a bad configuration: exit 1 and why.
func TestGCCommandFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "s3.yml")
	yml := "storage:\n  s3:\n    endpoint: \"" + closed + "\"\n    bucket: slipway\n    region: us-east-1\n    access_key: k\n    secret_key: s\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := gcRun(t, nil, "--config", cfg)
	if code != 1 || !strings.Contains(errs, "s3 endpoint "+closed+" bucket slipway is unreachable") || !strings.Contains(errs, "connection refused") {
		t.Fatalf("closed endpoint: exit %d, stderr %q", code, errs)
	}

	code, _, errs = gcRun(t, map[string]string{"SLIPWAY_GC_REFERRERS": "drop"})
	if code != 1 || !strings.Contains(errs, "env SLIPWAY_GC_REFERRERS: gc.referrers: must be follow_subject or keep") {
		t.Fatalf("bad config: exit %d, stderr %q", code, errs)
	}
	for _, args := range [][]string{{"--grace", "-1s"}, {"--grace", "soon"}, {"extra"}} {
		if code, _, errs := gcRun(t, map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": t.TempDir()}, args...); code != 2 || errs == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a reason", args, code, errs)
		}
	}
}

// A collector holding the lease (a replica's scheduled run) does not stop
// an operator's run: it is said, and the run goes on.
func TestGCCommandLeaseHeld(t *testing.T) {
	root := t.TempDir()
	store, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.AcquireLease(context.Background(), store, "replica-a", time.Hour); err != nil {
		t.Fatal(err)
	}
	code, out, errs := gcRun(t, map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": root}, "--dry-run")
	if code != 0 || !strings.Contains(errs, "held by replica-a") || !strings.Contains(errs, "running anyway") || !strings.Contains(out, "dry run done") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
}

// --gentle runs at the pace the configuration gives a busy replica's
// collections, says so, and frees what a run at full speed frees.
func TestGCCommandGentle(t *testing.T) {
	root := t.TempDir()
	path := orphan(t, root)
	env := map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": root,
		"SLIPWAY_GC_BUSY_CONCURRENCY": "3", "SLIPWAY_GC_BUSY_SHARE": "0.5"}
	code, out, errs := gcRun(t, env, "--gentle", "--grace", "0s")
	if code != 0 {
		t.Fatalf("gentle run: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"grace 0s, gently: 3 requests in flight, each busy 50% of the time\n", "freed 1 objects (6 B), rescued 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the orphan is still there: %v", err)
	}
}
