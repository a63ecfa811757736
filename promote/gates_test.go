package promote

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
)

const testReport = "application/vnd.slipway.test-report"

// gated is a service on e's store whose production stage requires a test
// report that passed (a referrers gate: no keys needed here; gate's own
// tests cover signatures).
func (e *env) gated() *Service {
	e.t.Helper()
	stages := append([]config.Stage(nil), testStages...)
	stages[2].Gates = config.Gates{Referrers: []config.ReferrerGate{{ArtifactType: testReport, Annotations: map[string]string{"result": "passed"}}}}
	checker, err := gate.New(stages)
	if err != nil {
		e.t.Fatal(err)
	}
	opts := e.svc.opts
	opts.Stages, opts.Gates = stages, checker
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return New(e.store, e.reg.Metadata(), opts)
}

// attachReport pushes a test report whose subject is the manifest ref
// names, into the same repository.
func (e *env) attachReport(repo, of, result string) {
	e.t.Helper()
	desc, err := remote.Head(e.ref(repo + ":" + of))
	if err != nil {
		e.t.Fatal(err)
	}
	art := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	art = mutate.ConfigMediaType(art, testReport)
	art = mutate.Annotations(art, map[string]string{"result": result}).(ggcr.Image)
	art = mutate.Subject(art, ggcr.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}).(ggcr.Image)
	if err := remote.Write(e.ref(repo+":report-"+of+"-"+result), art); err != nil {
		e.t.Fatalf("attach report: %v", err)
	}
}

func TestGateRefusesAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	svc := e.gated()
	ctx := context.Background()
	e.pushImage("staging/app:1", 1024, 2)
	e.attachReport("staging/app", "1", "failed")
	before := len(e.keys("ledger/"))

	_, _, err := svc.Promote(ctx, Request{Source: "staging/app:1", To: "production"})
	refusal(t, err, http.StatusConflict, CodeGateFailed, "staging/app:1")
	var pe *Error
	errors.As(err, &pe)
	if len(pe.Failures) != 1 || pe.Failures[0].Gate != "referrers" || pe.Failures[0].Source != "staging/app:1" || pe.Failures[0].Message == "" {
		t.Fatalf("failures = %+v, want one referrers failure naming staging/app:1", pe.Failures)
	}
	if n := len(e.keys("ledger/")); n != before {
		t.Errorf("ledger has %d objects after a refusal, %d before", n, before)
	}
	if ok, err := e.reg.Metadata().RepositoryExists(ctx, "production/app"); err != nil || ok {
		t.Errorf("production/app exists after a refused promotion (%v)", err)
	}
	// The ungated stage is not affected.
	if _, _, err := svc.Promote(ctx, Request{Source: "staging/app:1", To: "qa"}); err != nil {
		t.Errorf("promotion into the ungated qa: %v", err)
	}
}

func TestGatePassesAndRecordsEvidence(t *testing.T) {
	e := newEnv(t)
	svc := e.gated()
	ctx := context.Background()
	e.pushImage("staging/app:1", 1024, 2)
	e.attachReport("staging/app", "1", "passed")
	d := digest.Digest(e.digestOf("staging/app:1"))

	rec, created, err := svc.Promote(ctx, Request{Source: "staging/app:1", To: "production"})
	if err != nil || !created {
		t.Fatalf("Promote: created %v, %v", created, err)
	}
	if len(rec.Evidence) != 1 || rec.Evidence[0].Kind != gate.KindReferrer || rec.Evidence[0].Type != testReport || rec.Evidence[0].Subject != d {
		t.Fatalf("evidence = %+v, want the test report over %s", rec.Evidence, d)
	}
	got, err := svc.Get(ctx, rec.ID)
	if err != nil || len(got.Evidence) != 1 || got.Evidence[0].Manifest != rec.Evidence[0].Manifest {
		t.Errorf("ledger record: %+v, %v", got.Evidence, err)
	}
	// The report travelled with the image.
	refs, err := e.reg.Metadata().Referrers(ctx, "production/app", d)
	if err != nil || len(refs) != 1 || refs[0].Digest != rec.Evidence[0].Manifest {
		t.Errorf("production/app referrers of %s: %+v, %v", d, refs, err)
	}
}

// A rollback is gated too: the earlier digest must pass the gates as the
// target repository holds it now.
func TestGateRefusesRollback(t *testing.T) {
	e := newEnv(t)
	svc := e.gated()
	ctx := context.Background()
	e.pushImage("staging/app:a", 1024, 1)
	e.pushImage("staging/app:b", 1024, 1)
	e.attachReport("staging/app", "b", "passed")
	// a entered production before the gate existed.
	e.promote(Request{Source: "staging/app:a", To: "production", Tag: "current"})
	rec, _, err := svc.Promote(ctx, Request{Source: "staging/app:b", To: "production", Tag: "current"})
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.keys("ledger/"))
	_, err = svc.Rollback(ctx, rec.ID, "")
	refusal(t, err, http.StatusConflict, CodeGateFailed, "production/app@")
	if n := len(e.keys("ledger/")); n != before {
		t.Errorf("ledger has %d objects after a refused rollback, %d before", n, before)
	}
	tag, err := e.reg.Metadata().Tag(ctx, "production/app", "current")
	if err != nil || tag.Digest.String() != e.digestOf("staging/app:b") {
		t.Fatalf("production/app:current = %v, %v after a refused rollback; want b", tag.Digest, err)
	}
}
