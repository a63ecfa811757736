package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/promote"
)

func TestReleaseCreateCommand(t *testing.T) {
	rel := promote.Release{ID: "7fffffffffffffff-01234567", Stage: "production", State: promote.ReleaseComplete, Actor: "robot$ci", At: time.Now(),
		Members: []promote.Record{
			{ID: "7fffffffffffffff-0000000a", Target: "production/api:1.4", Source: "staging/api:1.4", Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Outcome: promote.OutcomePromoted},
			{ID: "7fffffffffffffff-0000000b", Target: "production/worker:stable", Source: "staging/worker:1.4", Digest: digest.Digest("sha256:" + strings.Repeat("b", 64)), Outcome: promote.OutcomePromoted},
		}}
	url, req, body := fakeAPI(t, http.StatusCreated, rel)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"release", "create", "--to", "production", "staging/api:1.4", "staging/worker:1.4=stable", "--reason", "train"}, nil, &out, &errb,
		envOf(map[string]string{"SLIPWAY_URL": url, "SLIPWAY_USER": "robot$ci", "SLIPWAY_PASSWORD": "s3cret"}))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if req.Method != http.MethodPost || req.URL.Path != "/api/v1/releases" {
		t.Fatalf("sent %s %s", req.Method, req.URL.Path)
	}
	var sent promote.ReleaseRequest
	if err := json.Unmarshal(body.Bytes(), &sent); err != nil || sent.To != "production" || sent.Reason != "train" || len(sent.Images) != 2 ||
		sent.Images[0] != (promote.ReleaseImage{Source: "staging/api:1.4"}) || sent.Images[1] != (promote.ReleaseImage{Source: "staging/worker:1.4", Tag: "stable"}) {
		t.Fatalf("request body %s (%v)", body, err)
	}
	for _, want := range []string{"released 2 image(s) into production", rel.ID, "production/api:1.4", "production/worker:stable", "sha256:bbbbbbbbbbbb"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReleaseCreateRefusedByGates(t *testing.T) {
	e := promote.Error{Code: promote.CodeGateFailed, Message: "refused by the gates of production: …", Failures: []promote.GateFailure{
		{Source: "staging/api:1.4", Failure: gate.Failure{Gate: "signed_by", Message: "no signature by key ci-2026"}},
		{Source: "staging/worker:1.4", Failure: gate.Failure{Gate: "attestations", Message: "no https://slsa.dev/provenance/v1 attestation"}},
	}}
	url, _, _ := fakeAPI(t, http.StatusConflict, e)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"release", "create", "--to", "production", "staging/api:1.4", "staging/worker:1.4"}, nil, &out, &errb,
		envOf(map[string]string{"SLIPWAY_URL": url}))
	want := "slipway release create: refused (409 gate_failed): 2 gate failure(s), nothing was promoted:\n" +
		"  staging/api:1.4 [signed_by]: no signature by key ci-2026\n" +
		"  staging/worker:1.4 [attestations]: no https://slsa.dev/provenance/v1 attestation\n"
	if code != 1 || errb.String() != want {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
	// Other refusals print like promote's.
	url, _, _ = fakeAPI(t, http.StatusConflict, promote.Error{Code: promote.CodeFixedTag, Message: "production/api:1.4 is a fixed tag"})
	errb.Reset()
	code = run(context.Background(), []string{"release", "create", "--to", "production", "staging/api:1.4"}, nil, &out, &errb, envOf(map[string]string{"SLIPWAY_URL": url}))
	if code != 1 || !strings.Contains(errb.String(), "refused (409 fixed_tag): production/api:1.4 is a fixed tag") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	// Usage errors.
	for _, args := range [][]string{{"release"}, {"release", "create", "staging/api:1"}, {"release", "create", "--to", "production"}, {"release", "show"}, {"release", "nope"}} {
		if code := run(context.Background(), args, nil, &out, &errb, envOf(nil)); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestReleaseShowListRollbackCommands(t *testing.T) {
	rel := promote.Release{ID: "7fffffffffffffff-01234567", Stage: "production", State: promote.ReleaseComplete, At: time.Now(), RollbackOf: "7fffffffffffffff-0000000f"}
	for _, c := range []struct {
		args         []string
		answer       any
		method, path string
		want         string
	}{
		{[]string{"release", "show", rel.ID}, rel, "GET", "/api/v1/releases/" + rel.ID, "rollback of  7fffffffffffffff-0000000f"},
		{[]string{"release", "list", "--limit", "5"}, promote.ReleasePage{Releases: []promote.Release{rel}, NextCursor: rel.ID}, "GET", "/api/v1/releases", "more: --cursor " + rel.ID},
		{[]string{"release", "rollback", rel.ID, "--reason", "bad"}, rel, "POST", "/api/v1/releases/" + rel.ID + "/rollback", "rolled back release " + rel.ID},
	} {
		url, req, body := fakeAPI(t, http.StatusOK, c.answer)
		var out, errb bytes.Buffer
		if code := run(context.Background(), c.args, nil, &out, &errb, envOf(map[string]string{"SLIPWAY_URL": url})); code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errb.String())
		}
		if req.Method != c.method || req.URL.Path != c.path || !strings.Contains(out.String(), c.want) {
			t.Fatalf("%q: sent %s %s, output:\n%s", c.args, req.Method, req.URL.Path, out.String())
		}
		if c.args[1] == "list" && req.URL.Query().Get("limit") != "5" {
			t.Fatalf("list query %v", req.URL.Query())
		}
		if c.args[1] == "rollback" && !strings.Contains(body.String(), `"reason":"bad"`) {
			t.Fatalf("rollback body %s", body)
		}
	}
}
