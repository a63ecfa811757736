package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/admin/admintest"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/storage"
)

const slsa = "https://slsa.dev/provenance/v1"

// gatedApp seeds app with production gated: v1 passes (signed by
// ci-2026), v2 (also latest in staging) lacks the signature.
func gatedApp(e *env, app string) {
	e.fake.SeedApp(app, e.clock.Now())
	e.fake.SetStageGates("production", config.Gates{SignedBy: []config.GateKey{{Name: "ci-2026", Key: "pem"}}})
	v1, v2 := admintest.Digest(app+"-v1"), admintest.Digest(app+"-v2")
	e.fake.SetGates("staging/"+app, v1, []promote.StageGateStatus{{Stage: "production", Result: gate.Result{
		Evidence: []gate.Proof{{Kind: gate.KindSignature, Subject: v1, Manifest: admintest.Digest("sig1"), KeyID: "ci-2026", Via: "tag"}}}}})
	e.fake.SetGates("staging/"+app, v2, []promote.StageGateStatus{{Stage: "production", Result: gate.Result{
		Failures: []gate.Failure{{Gate: "signed_by", Subject: v2, Message: "no signature by key ci-2026 over " + string(v2)}}}}})
}

func TestGateBadgesOnTheRepositoryPage(t *testing.T) {
	e := newEnv(t, nil)
	gatedApp(e, "app")
	v1, v2 := admintest.Digest("app-v1"), admintest.Digest("app-v2")
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/repositories/app")
	wantStatus(t, p, http.StatusOK)

	var v1Row string
	for _, m := range promoteButton.FindAllStringSubmatch(p.body, -1) {
		if m[1] == "v1" && strings.Contains(m[0], `data-digest="`+string(v1)+`"`) {
			v1Row = m[0]
		}
	}
	if !strings.Contains(v1Row, `class="gate pass" data-stage="production" title="signature by ci-2026">✓ production<span class="opt"> gates</span></span>`) ||
		!strings.Contains(v1Row, `href="/admin/repositories/staging/app/digests/`+string(v1)+`"`) {
		t.Errorf("v1 lacks its passed badge and evidence link:\n%s", v1Row)
	}
	v2Row := rowOf(t, p, "v2")
	if !strings.Contains(v2Row, "<summary>✗ production<span class=\"opt\">: signed_by</span></summary>") ||
		!strings.Contains(v2Row, "<li>no signature by key ci-2026 over "+string(v2)+"</li>") ||
		!strings.Contains(v2Row, `title="no signature by key ci-2026 over `+string(v2)+`"`) {
		t.Errorf("v2 lacks its failed badge with the message:\n%s", v2Row)
	}
	if strings.Contains(v2Row, "✓ production<span class=\"opt\"> gates") {
		t.Errorf("v2 is shown as passing:\n%s", v2Row)
	}
	// Each repository and digest once (latest and v2 share a digest); the
	// tags only production has feed no gated stage: not asked.
	calls := e.fake.GateCalls()
	want := map[string]int{"staging/app@" + string(v1): 1, "staging/app@" + string(v2): 1}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("GateStatus calls %v, want %v", calls, want)
	}

	// A verdict that cannot be read leaves the page up, and says so.
	e.fake.FailGates = fmt.Errorf("s3: %w", storage.ErrUnavailable)
	p = b.get("/admin/repositories/app")
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, `<span class="gate unknown">gates not checked: storage is unavailable</span>`)
	mustNotContain(t, p, "s3:", `class="gate pass"`)
}

func TestNoGateBadgeWithoutGatedStages(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	v2 := admintest.Digest("app-v2")
	// A verdict exists, but no stage is configured with gates.
	e.fake.SetGates("staging/app", v2, []promote.StageGateStatus{{Stage: "production"}})
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/repositories/app")
	wantStatus(t, p, http.StatusOK)
	mustNotContain(t, p, `class="gate`, "production gates")
	mustContain(t, p, `href="/admin/repositories/staging/app/digests/`+string(v2)+`"`)
	if n := len(e.fake.GateCalls()); n != 0 {
		t.Fatalf("GateStatus called %d times without a gated stage", n)
	}
}

func TestEvidencePage(t *testing.T) {
	e := newEnv(t, nil)
	gatedApp(e, "team/app")
	v2 := admintest.Digest("team/app-v2")
	e.fake.SetEvidence("staging/team/app", v2, []gate.Proof{
		{Kind: gate.KindSignature, Subject: v2, Manifest: admintest.Digest("sig-good"), Layer: admintest.Digest("payload"), KeyID: "ci-2026", Via: "referrers"},
		{Kind: gate.KindSignature, Subject: v2, Manifest: admintest.Digest("sig-other"), Via: "tag"},
		{Kind: gate.KindAttestation, Subject: v2, Manifest: admintest.Digest("att"), KeyID: "ci-2026", Type: slsa, Via: "tag"},
	})
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/repositories/staging/team/app/digests/" + string(v2))
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, "Evidence of staging/team/app", `href="/admin/repositories/team/app"`, string(v2),
		`<code class="ok key">ci-2026</code>`, `<span class="bad unverified">verifies under no configured key</span>`,
		"<code>"+slsa+"</code>", shortDigest(admintest.Digest("sig-good")), shortDigest(admintest.Digest("sig-other")),
		"OCI referrers", "sha256-….sig tag", "sha256-….att tag",
		"✗ production: refused", "<code>signed_by</code>", "no signature by key ci-2026 over "+string(v2))
	if n := strings.Count(p.body, `<tr data-kind=`); n != 3 {
		t.Fatalf("%d proofs listed, want 3", n)
	}
	// The passing digest lists what passed.
	v1 := admintest.Digest("team/app-v1")
	p = b.get("/admin/repositories/staging/team/app/digests/" + string(v1))
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, "✓ production: every gate passes", "Passed on: signature by <code>ci-2026</code>",
		"No signature or attestation is attached to this digest")
	// A digest the repository does not hold, and a stage with no gates
	// after it.
	p = b.get("/admin/repositories/staging/team/app/digests/" + string(admintest.Digest("nope")))
	wantStatus(t, p, http.StatusNotFound)
	mustContain(t, p, "holds no manifest")
	p = b.get("/admin/repositories/production/team/app/digests/" + string(v1))
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, "No stage that production/team/app promotes into has gates.")
}

// The confirmation says what the target's gates make of the digest, and
// a promotion they refuse lists every failing gate, nothing changed.
func TestPromoteConfirmShowsGates(t *testing.T) {
	e := newEnv(t, nil)
	gatedApp(e, "app")
	v1, v2 := string(admintest.Digest("app-v1")), string(admintest.Digest("app-v2"))
	b := e.browser()
	b.login("rel", relPass)
	c := b.post("/admin/promote", url.Values{"pick": {"staging/app:v2|production|" + v2}})
	wantStatus(t, c, http.StatusOK)
	mustContain(t, c, "<dt>Gates of production</dt>", `id="confirm-gates">✗ signed_by: the promotion will be refused`,
		"<li>no signature by key ci-2026 over "+v2+"</li>")
	form := url.Values{"source": {"staging/app:v2"}, "digest": {v2}, "to": {"production"}, "tag": {"v2"},
		"confirmed": {"1"}, "expect_previous": {"none"}}
	p := b.post("/admin/promote", form)
	wantStatus(t, p, http.StatusConflict)
	mustContain(t, p, `<p class="error" role="alert">Refused: the gates did not pass. Nothing was changed.</p>`,
		"<li><code>staging/app:v2</code>: <code>signed_by</code>: no signature by key ci-2026 over "+v2+"</li>", "Promote staging/app:v2?")
	if len(e.fake.Ledger()) != 0 {
		t.Fatalf("a refused promotion was recorded: %+v", e.fake.Ledger())
	}
	c = b.post("/admin/promote", url.Values{"pick": {"staging/app:v1|production|" + v1}, "tag": {"stable"}})
	mustContain(t, c, `id="confirm-gates">✓ every gate passes</span> <span class="small muted">(signature by ci-2026)</span>`)
	// Not gated: nothing said.
	e.fake.SetStageGates("production", config.Gates{})
	c = b.post("/admin/promote", url.Values{"pick": {"staging/app:v2|production|" + v2}})
	wantStatus(t, c, http.StatusOK)
	mustNotContain(t, c, "Gates of production", "confirm-gates")
}

// A slow verifier does not hold the page: rows not checked within the
// budget say so.
func TestSlowGatesDoNotHoldThePage(t *testing.T) {
	e := newEnv(t, nil)
	gatedApp(e, "app")
	e.admin.gateBudget = 100 * time.Millisecond
	e.fake.GateWait = func(ctx context.Context) { <-ctx.Done() }
	b := e.browser()
	b.login("dev", devPass)
	start := time.Now()
	p := b.get("/admin/repositories/app")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the page took %s", took)
	}
	wantStatus(t, p, http.StatusOK)
	if row := rowOf(t, p, "v2"); !strings.Contains(row, "gates not checked: verification took too long; reload to try again") {
		t.Fatalf("v2 does not say its gates were not checked:\n%s", row)
	}
	mustNotContain(t, p, `class="gate pass"`, `class="gate fail"`)
}

func TestDigestPath(t *testing.T) {
	d := admintest.Digest("x")
	for in, want := range map[string]string{
		"staging/app/digests/" + string(d):         "staging/app",
		"staging/digests/app/digests/" + string(d): "staging/digests/app",
		"staging/app/digests/sha256:short":         "",
		"staging/app/digests/":                     "",
		"digests/" + string(d):                     "",
		"team/digests/x":                           "",
	} {
		repo, got, ok := digestPath(in)
		if want == "" {
			if ok {
				t.Errorf("digestPath(%q) = %q, %q: want no evidence page", in, repo, got)
			}
			continue
		}
		if !ok || repo != want || got != d {
			t.Errorf("digestPath(%q) = %q, %q, %v; want %q, %q", in, repo, got, ok, want, d)
		}
	}
}
