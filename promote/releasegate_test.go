package promote

import (
	"context"
	"net/http"
	"testing"

	v1Image "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
)

// TestReleaseRefusedByGates: a stage whose gate requires a test report
// attached to each digest; the third image has none. The release is
// refused with one 409 gate_failed naming only that image, and nothing is
// written; the first two alone pass, each member's record holding its
// evidence.
func TestReleaseRefusedByGates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const report = "application/vnd.slipway.test-report"
	stages := append([]config.Stage{}, testStages...)
	stages = append(stages, config.Stage{Name: "gated", Prefix: "gated/", PromoteFrom: []string{"staging"},
		Gates: config.Gates{Referrers: []config.ReferrerGate{{ArtifactType: report}}}})
	checker, err := gate.New(stages)
	if err != nil {
		t.Fatal(err)
	}
	svc := New(e.store, e.reg.Metadata(), Options{Stages: stages, Gates: checker, Logger: e.svc.log})
	for i, r := range []string{"staging/a:1", "staging/b:1", "staging/c:1"} {
		e.pushImage(r, 512, 1)
		if i == 2 {
			continue
		}
		desc, err := remote.Head(e.ref(r))
		if err != nil {
			t.Fatal(err)
		}
		art, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		att := mutate.Subject(mutate.ConfigMediaType(art, report), *desc).(v1Image.Image)
		d, _ := att.Digest()
		if err := remote.Write(e.ref(r[:len(r)-2]+"@"+d.String()), att); err != nil {
			t.Fatal(err)
		}
	}
	e.reg.Wait()
	ledger := len(e.keys("ledger/"))
	_, err = svc.CreateRelease(ctx, ReleaseRequest{To: "gated", Images: images("staging/a:1", "staging/b:1", "staging/c:1")})
	refusal(t, err, http.StatusConflict, CodeGateFailed, "staging/c:1")
	if fs := err.(*Error).Failures; len(fs) != 1 || fs[0].Source != "staging/c:1" || fs[0].Gate != "referrers" {
		t.Fatalf("failures = %+v", fs)
	}
	if len(e.keys("ledger/")) != ledger || e.tagOf("gated/a:1") != "" || e.tagOf("gated/b:1") != "" {
		t.Fatal("a release refused by the gates wrote something")
	}
	// Two images without the report: both in the one refusal.
	_, err = svc.CreateRelease(ctx, ReleaseRequest{To: "gated", Images: images("staging/c:1", "staging/a:1", "staging/c:1=other")})
	refusal(t, err, http.StatusConflict, CodeGateFailed, "staging/c:1")
	if fs := err.(*Error).Failures; len(fs) != 2 || fs[0].Source != "staging/c:1" || fs[1].Source != "staging/c:1" {
		t.Fatalf("failures = %+v", fs)
	}
	rel, err := svc.CreateRelease(ctx, ReleaseRequest{To: "gated", Images: images("staging/a:1", "staging/b:1")})
	if err != nil {
		t.Fatalf("release of the two images with reports: %v", err)
	}
	if len(rel.Members) != 2 {
		t.Fatalf("release members = %+v", rel.Members)
	}
	for _, m := range rel.Members {
		if len(m.Evidence) != 1 || m.Evidence[0].Kind != gate.KindReferrer || m.Evidence[0].Subject != m.Digest {
			t.Errorf("member %s evidence = %+v, want its report", m.Target, m.Evidence)
		}
	}
}
