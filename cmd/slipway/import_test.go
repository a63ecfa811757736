package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/importer"
	"github.com/slipway/slipway/importer/stocklayout/stocktest"
	"github.com/slipway/slipway/storage"
)

func importRun(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"import"}, args...), nil, &out, &errb, envOf(env))
	return code, out.String(), errb.String()
}

// stockFolder is a stock registry folder with one tagged image of one
// layer (app:1.0).
func stockFolder(t *testing.T) (dir string, tagged digest.Digest) {
	st := stocktest.New(t)
	layer, cfg := st.Blob("layer"), st.Blob("{}")
	st.Layer("app", layer)
	st.Layer("app", cfg)
	d := st.Manifest("app", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+cfg.String()+`","size":2},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"`+layer.String()+`","size":5}]}`)
	st.Tag("app", "1.0", d)
	return st.Dir, d
}

func TestImportCommandPrintsTheSummaryAndExits0(t *testing.T) {
	stock, _ := stockFolder(t)
	env := map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": t.TempDir()}
	code, out, errs := importRun(t, env, "--from", stock, "--stage-map", "=staging/")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var sum importer.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, out)
	}
	if sum.Tags.Imported != 1 || sum.Blobs.Imported != 2 || sum.Manifests.Imported != 1 || sum.Source != stock {
		t.Fatalf("summary %+v", sum)
	}
	if errs != "" {
		t.Fatalf("stderr is not a terminal, yet: %q", errs)
	}
	// Again: nothing written.
	code, out, _ = importRun(t, env, "--from", stock, "--stage-map", "=staging/")
	if err := json.Unmarshal([]byte(out), &sum); err != nil || code != 0 || sum.Written() != 0 || sum.Tags.Present != 1 {
		t.Fatalf("second run: exit %d %v %+v", code, err, sum)
	}
}

func TestImportCommandExits1WithProblems(t *testing.T) {
	stock, _ := stockFolder(t)
	// A tag whose link is not a digest: a problem, the rest imported.
	bad := filepath.Join(stock, "docker/registry/v2/repositories/app/_manifests/tags/bad/current")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "link"), []byte("not a digest"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": t.TempDir()}
	code, out, errs := importRun(t, env, "--from", stock)
	var sum importer.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || code != 1 {
		t.Fatalf("exit %d (want 1) %v\n%s%s", code, err, out, errs)
	}
	if sum.ProblemsTotal != 1 || !strings.Contains(sum.Problems[0].Key, "tags/bad/current/link") || sum.Tags.Imported != 1 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestImportCommandErrors(t *testing.T) {
	stock, _ := stockFolder(t)
	slipway := t.TempDir()
	env := map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": slipway}
	notLayout := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "--from is required"},
		{[]string{"--from", stock, "--mode", "fast"}, 2, "--mode must be auto or copy"},
		{[]string{"--from", stock, "--parallel", "0"}, 2, "--parallel must be"},
		{[]string{"--from", stock, "--repositories", "["}, 2, "--repositories"},
		{[]string{"--from", stock, "--stage-map", "nonsense"}, 2, "--stage-map"},
		{[]string{"--from", stock, "extra"}, 2, "unexpected argument"},
		{[]string{"--from", filepath.Join(stock, "missing")}, 1, "source folder " + filepath.Join(stock, "missing")},
		{[]string{"--from", notLayout}, 1, notLayout + ": not a stock registry storage layout"},
		{[]string{"--from", stock, "--from-endpoint", "http://minio:9000"}, 1, "--from-endpoint is for an s3:// source"},
		{[]string{"--from", "s3://bucket/root"}, 1, "--from-endpoint is required"},
		{[]string{"--from", "s3://bucket/root", "--from-endpoint", "http://127.0.0.1:1"}, 1, "no credentials: set AWS_ACCESS_KEY_ID"},
	} {
		code, out, errs := importRun(t, env, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("import %q: exit %d, stderr %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
		if out != "" {
			t.Errorf("import %q printed %q on stdout", c.args, out)
		}
	}
	// Nothing was written into Slipway's folder by the failed runs, nor
	// anything into the stock folders.
	entries, _ := os.ReadDir(slipway)
	for _, e := range entries {
		if e.Name() != ".slipway#" {
			t.Errorf("a failed import wrote %s into Slipway's storage", e.Name())
		}
	}
	if entries, _ := os.ReadDir(notLayout); len(entries) != 0 {
		t.Errorf("the import wrote into a folder it only reads: %v", entries)
	}
}

func TestCheckOutsideSlipway(t *testing.T) {
	for _, c := range []struct {
		stockRoot, slipwayRoot string
		refused                bool
	}{
		{"", "", false},          // docker/ is reserved for it
		{"registry", "", false},  // registry/docker/: no Slipway prefix
		{"data", "", true},       // data/docker/: the orphan stage's
		{"/blobs/old", "", true}, // blobs/…
		{"slip/uploads", "slip", true},
		{"data", "slip", false}, // outside Slipway's root
		{"slip", "slip", false}, // slip/docker/: reserved
	} {
		err := checkOutsideSlipway(c.stockRoot, c.slipwayRoot)
		if (err != nil) != c.refused {
			t.Errorf("stock root %q, Slipway root %q: %v, want refused %v", c.stockRoot, c.slipwayRoot, err, c.refused)
		}
	}
}

// viewer is a store with a bucket view (what storage/s3 gives).
type viewer struct{ storage.Store }

func (viewer) BucketView() storage.BucketView { return nil }

func TestReferenceModeOnlyForSlipwaysOwnBucket(t *testing.T) {
	dst := config.Storage{S3: &config.S3{Endpoint: "http://minio:9000", Bucket: "b", Root: "slipway"}}
	same := importSource{endpoint: "minio:9000", bucket: "b", root: "stock"}
	auto := importFlags{mode: "auto"}
	ref, err := referenceMode(auto, same, dst, viewer{})
	if err != nil || ref == nil || ref("docker/registry/v2/blobs/x") != "stock/docker/registry/v2/blobs/x" {
		t.Fatalf("same bucket: %v %v", ref != nil, err)
	}
	for name, c := range map[string]struct {
		f     importFlags
		src   importSource
		store storage.Store
		err   error
	}{
		"--mode=copy":      {importFlags{mode: "copy"}, same, viewer{}, nil},
		"another bucket":   {auto, importSource{endpoint: "minio:9000", bucket: "c"}, viewer{}, nil},
		"another endpoint": {auto, importSource{endpoint: "s3.example.com", bucket: "b"}, viewer{}, nil},
		"a folder":         {auto, importSource{}, viewer{}, nil},
		"no bucket view":   {auto, same, storage.ReadOnly(viewer{}), errNoBucketView},
	} {
		ref, err := referenceMode(c.f, c.src, dst, c.store)
		if ref != nil || !errors.Is(err, c.err) {
			t.Errorf("%s: reference %v, error %v; want none and %v", name, ref != nil, err, c.err)
		}
	}
	under := importSource{endpoint: "minio:9000", bucket: "b", root: "slipway/data"}
	if _, err := referenceMode(auto, under, dst, viewer{}); err == nil || !strings.Contains(err.Error(), "refusing a same-bucket reference") {
		t.Fatalf("stock layout under Slipway's data/: %v", err)
	}
}
