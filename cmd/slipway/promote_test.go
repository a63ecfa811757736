package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/promote"
)

// fakeAPI answers the promotion API the way the server does, from canned
// answers, and records what the CLI sent.
func fakeAPI(t *testing.T, status int, answer any) (url string, got *http.Request, body *bytes.Buffer) {
	t.Helper()
	got, body = &http.Request{}, &bytes.Buffer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*got = *r.Clone(context.Background())
		_, _ = io.Copy(body, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got, body
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPromoteCommand(t *testing.T) {
	rec := promote.Record{ID: "7fffffffffffffff-01234567", Source: "staging/app:1.0", Target: "production/app:1.0",
		Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Outcome: promote.OutcomePromoted, Actor: "robot$ci", At: time.Now()}
	url, req, body := fakeAPI(t, http.StatusCreated, rec)
	env := envOf(map[string]string{"SLIPWAY_URL": url, "SLIPWAY_USER": "robot$ci", "SLIPWAY_PASSWORD": "s3cret"})
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"promote", "staging/app:1.0", "--to", "production", "--tag", "stable", "--expect-previous", "none", "--reason", "release"}, nil, &out, &errb, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if req.Method != http.MethodPost || req.URL.Path != "/api/v1/promotions" {
		t.Fatalf("sent %s %s", req.Method, req.URL.Path)
	}
	if u, p, ok := req.BasicAuth(); !ok || u != "robot$ci" || p != "s3cret" {
		t.Fatalf("credentials sent: %q %q %v", u, p, ok)
	}
	var sent promote.Request
	if err := json.Unmarshal(body.Bytes(), &sent); err != nil || sent.Source != "staging/app:1.0" || sent.To != "production" ||
		sent.Tag != "stable" || sent.ExpectPrevious != "none" || sent.Reason != "release" {
		t.Fatalf("request body %s (%v)", body, err)
	}
	if !strings.Contains(out.String(), "promoted: staging/app:1.0 -> production/app:1.0") || !strings.Contains(out.String(), rec.ID) {
		t.Fatalf("output:\n%s", out.String())
	}
	if strings.Contains(out.String()+errb.String(), "s3cret") {
		t.Fatal("the password was printed")
	}
}

func TestPromoteCommandRefused(t *testing.T) {
	url, _, _ := fakeAPI(t, http.StatusConflict, promote.Error{Code: promote.CodeFixedTag, Message: "production/app:v1 is a fixed tag"})
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"promote", "staging/app:v1", "--to", "production"}, nil, &out, &errb,
		envOf(map[string]string{"SLIPWAY_URL": url}))
	if code != 1 || !strings.Contains(errb.String(), "refused (409 fixed_tag): production/app:v1 is a fixed tag") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	// Usage errors: no source, no --to, no server.
	for _, args := range [][]string{{"promote", "--to", "production"}, {"promote", "staging/app:1"}} {
		if code := run(context.Background(), args, nil, &out, &errb, envOf(nil)); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	errb.Reset()
	if code := run(context.Background(), []string{"promote", "staging/app:1", "--to", "production"}, nil, &out, &errb, envOf(nil)); code != 1 ||
		!strings.Contains(errb.String(), "SLIPWAY_URL") {
		t.Errorf("without SLIPWAY_URL: exit %d, %q", code, errb.String())
	}
}

func TestHistoryCommand(t *testing.T) {
	page := promote.Page{Records: []promote.Record{{ID: "7fffffffffffffff-01234567", Target: "production/app:stable",
		Digest: digest.Digest("sha256:" + strings.Repeat("b", 64)), Outcome: promote.OutcomeRolledBack, Actor: "admin", At: time.Now()}}}
	url, req, _ := fakeAPI(t, http.StatusOK, page)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"history", "app", "--tag", "stable", "--limit", "5"}, nil, &out, &errb,
		envOf(map[string]string{"SLIPWAY_URL": url}))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if q := req.URL.Query(); q.Get("repository") != "app" || q.Get("tag") != "stable" || q.Get("limit") != "5" {
		t.Fatalf("query %v", q)
	}
	if !strings.Contains(out.String(), "production/app:stable") || !strings.Contains(out.String(), "sha256:bbbbbbbbbbbb") ||
		!strings.Contains(out.String(), "rolled_back") {
		t.Fatalf("output:\n%s", out.String())
	}
}
