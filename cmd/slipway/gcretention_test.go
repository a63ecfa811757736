package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// pushTags pushes one image per tag into repo of the store at root, each
// with its own config (so its own manifest), in order; it returns the
// manifests' digests.
func pushTags(t *testing.T, root, repo string, tags ...string) []digest.Digest {
	t.Helper()
	store, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	reg := registry.New(store, registry.Options{Logger: slog.New(slog.DiscardHandler)})
	e := gin.New()
	reg.Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	send := func(method, path, body, ctype string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
		}
	}
	var out []digest.Digest
	for _, tag := range tags {
		cfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","tag":%q}`, tag)
		cd := digest.FromString(cfg)
		send(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+cd.String(), cfg, "application/octet-stream")
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, cd, len(cfg))
		send(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, m, "application/vnd.oci.image.manifest.v1+json")
		out = append(out, digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(m)))))
	}
	reg.Wait()
	return out
}

// `slipway gc` applies retention first and prints its summary: a dry run
// deletes no tag; a real run deletes the 3 older of 5 tags and frees
// their manifests in the same run.
func TestGCCommandRetention(t *testing.T) {
	root := t.TempDir()
	ds := pushTags(t, root, "staging/ret", "t0", "t1", "t2", "t3", "t4")
	conf := filepath.Join(t.TempDir(), "slipway.yaml")
	yaml := fmt.Sprintf("storage:\n  filesystem:\n    root: %s\ngc:\n  grace: 0s\n"+
		"retention:\n  rules:\n    - repositories: \"staging/*\"\n      keep_last: 2\n      dry_run: false\n", root)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	linked := func(d digest.Digest) bool {
		_, err := store.Stat(context.Background(), registry.ManifestLinkKey("staging/ret", d))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	code, out, errs := gcRun(t, nil, "--config", conf, "--dry-run")
	if code != 0 || !strings.Contains(out, "retention: 0 tags deleted, 3 would be (dry run)") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	for i, d := range ds {
		if !linked(d) {
			t.Fatalf("the dry run freed t%d's manifest", i)
		}
	}

	code, out, errs = gcRun(t, nil, "--config", conf)
	if code != 0 || !strings.Contains(out, "retention: 3 tags deleted, 0 would be (dry run)") {
		t.Fatalf("real run: exit %d\n%s%s", code, out, errs)
	}
	for i, d := range ds {
		if linked(d) != (i >= 3) {
			t.Errorf("t%d's manifest linked %v, want %v", i, linked(d), i >= 3)
		}
	}
}

// A retention pass that failed in one repository fails the command, as
// one that failed as a whole does; a clean one does not.
func TestRetentionFailure(t *testing.T) {
	if err := retentionFailure(retention.Report{}, nil); err != nil {
		t.Fatalf("clean pass: %v", err)
	}
	r := retention.Report{Errors: []string{"staging/a: boom", "staging/b: bang"}}
	if err := retentionFailure(r, nil); err == nil || err.Error() != "2 repositories failed, the first: staging/a: boom" {
		t.Fatalf("per-repository errors: %v", err)
	}
	whole := errors.New("retention: listing repositories: unavailable")
	if err := retentionFailure(r, whole); err != whole {
		t.Fatalf("failed pass: %v", err)
	}
}
