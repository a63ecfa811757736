package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/storage"
)

// pushOwnImage pushes an image whose config names tag (so every tag has
// its own manifest) and returns the manifest's digest.
func pushOwnImage(t *testing.T, h http.Handler, tok, repo, tag string) digest.Digest {
	t.Helper()
	cfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","tag":%q}`, tag)
	d := pushBlob(t, h, tok, repo, cfg)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, d, len(cfg))
	rec := send(h, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, m,
		append(bearer(tok), "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
	if rec.Code != http.StatusCreated {
		t.Fatalf("push %s:%s = %d %s", repo, tag, rec.Code, rec.Body)
	}
	return digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(m))))
}

// collectNow starts a collection through POST /api/v1/gc/runs and waits
// for its end (a real run waits the protocol's fence, 5 s).
func collectNow(t *testing.T, s *Server, body string) {
	t.Helper()
	rec := send(s.Handler(), http.MethodPost, "/api/v1/gc/runs", body,
		append(basic(adminUser, adminPass), "Content-Type", "application/json")...)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/gc/runs = %d %s", rec.Code, rec.Body)
	}
	deadline := time.Now().Add(time.Minute)
	for s.gc.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the collection did not end within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every collection applies retention first: a dry run only reports what
// keep_last: 2 would delete; a real run deletes the 3 older tags of 5 and
// the collector frees their manifests in the same run.
func TestGCAppliesRetentionFirst(t *testing.T) {
	cfg := testConfig(t)
	cfg.GC.Grace = 0
	deletes := false
	cfg.Retention.Rules = []config.RetentionRule{{Repositories: "staging/*", KeepLast: 2, DryRun: &deletes}}
	s, logs := newTestServerWith(t, cfg, nil, auth.Options{})
	h := s.Handler()
	tok := token(t, h, adminUser, adminPass, "repository:staging/ret:pull,push")
	var ds []digest.Digest
	for i := range 5 {
		ds = append(ds, pushOwnImage(t, h, tok, "staging/ret", fmt.Sprintf("t%d", i)))
	}
	s.registry.Wait()
	status := func(ref string) int {
		return send(h, http.MethodGet, "/v2/staging/ret/manifests/"+ref, "", bearer(tok)...).Code
	}
	linked := func(d digest.Digest) bool {
		_, err := s.gc.store.Stat(context.Background(), registry.ManifestLinkKey("staging/ret", d))
		return err == nil
	}

	collectNow(t, s, `{"dry_run":true}`)
	for i, d := range ds {
		if got := status(fmt.Sprintf("t%d", i)); got != http.StatusOK || !linked(d) {
			t.Fatalf("after a dry run, tag t%d = %d, linked %v: want both kept", i, got, linked(d))
		}
	}
	if !strings.Contains(logs.String(), "retention: 0 tags deleted, 3 would be (dry run)") {
		t.Fatalf("no dry-run retention summary in the log:\n%s", logs)
	}

	collectNow(t, s, "")
	for i, d := range ds {
		tagged, isLinked := status(fmt.Sprintf("t%d", i)), linked(d)
		if i < 3 && (tagged != http.StatusNotFound || isLinked) {
			t.Errorf("old tag t%d = %d, manifest linked %v: want 404 and freed", i, tagged, isLinked)
		}
		if i >= 3 && (tagged != http.StatusOK || !isLinked) {
			t.Errorf("newest tag t%d = %d, linked %v: want kept", i, tagged, isLinked)
		}
	}
	if !strings.Contains(logs.String(), "retention: 3 tags deleted, 0 would be (dry run)") {
		t.Fatalf("no retention summary in the log:\n%s", logs)
	}
	reps, err := retention.Reports(context.Background(), s.gc.store, 10)
	if err != nil || len(reps) != 2 || !reps[1].DryRun || reps[0].DryRun || len(reps[0].Deleted) != 3 {
		t.Fatalf("retention reports: %v %+v", err, reps)
	}
	if _, err := s.gc.store.Stat(context.Background(), registry.ManifestLinkKey("staging/ret", ds[0])); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("manifest link of t0: %v, want not found", err)
	}
}

// A rule's untagged_after reaches the collector: an untagged manifest of a
// repository it covers stays past gc.grace, one of another repository is
// freed. Such a rule deletes no tag: no retention pass runs.
func TestGCUntaggedAfter(t *testing.T) {
	cfg := testConfig(t)
	cfg.GC.Grace = 0
	cfg.Retention.Rules = []config.RetentionRule{{Repositories: "staging/held", UntaggedAfter: time.Hour}}
	s, logs := newTestServerWith(t, cfg, nil, auth.Options{})
	h := s.Handler()
	untagged := map[string]digest.Digest{}
	for _, repo := range []string{"staging/held", "staging/other"} {
		tok := token(t, h, adminUser, adminPass, "repository:"+repo+":pull,push,delete")
		d := pushOwnImage(t, h, tok, repo, "gone")
		if rec := send(h, http.MethodDelete, "/v2/"+repo+"/manifests/gone", "", bearer(tok)...); rec.Code != http.StatusAccepted {
			t.Fatalf("DELETE tag = %d %s", rec.Code, rec.Body)
		}
		untagged[repo] = d
	}
	s.registry.Wait()
	collectNow(t, s, "")
	for repo, d := range untagged {
		_, err := s.gc.store.Stat(context.Background(), registry.ManifestLinkKey(repo, d))
		if held := repo == "staging/held"; held != (err == nil) {
			t.Errorf("%s's untagged manifest: %v, want kept %v", repo, err, held)
		}
	}
	if strings.Contains(logs.String(), "retention:") {
		t.Error("a retention pass ran without a rule that deletes tags")
	}
}
