package promote

import (
	"context"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
)

// gatedService is a second service on e's registry whose qa stage is
// gated (production, which also promotes from staging, is not).
func gatedService(t *testing.T, e *env) *Service {
	t.Helper()
	stages := append([]config.Stage(nil), testStages...)
	stages[1].Gates = config.Gates{Referrers: []config.ReferrerGate{{ArtifactType: "application/vnd.slipway.test-report"}}}
	checker, err := gate.New(stages)
	if err != nil {
		t.Fatal(err)
	}
	return New(e.store, e.reg.Metadata(), Options{
		Stages: stages, Gates: checker, Logger: e.svc.log,
		Allowed: func(context.Context) (func(string) []string, error) {
			return func(repo string) []string {
				if e.grants != nil {
					return e.grants(repo)
				}
				return []string{"pull", "promote"}
			}, nil
		},
		Actor: func(context.Context) string { return "tester" },
	})
}

func TestGateStatusNamesTheGatedNextStages(t *testing.T) {
	e := newEnv(t)
	e.pushImage("staging/app:1", 512, 1)
	d := digest.Digest(e.digestOf("staging/app:1"))
	svc := gatedService(t, e)
	ctx := context.Background()

	got, err := svc.GateStatus(ctx, "staging/app", d)
	if err != nil {
		t.Fatal(err)
	}
	// staging promotes into qa (gated) and production (not gated).
	if len(got) != 1 || got[0].Stage != "qa" {
		t.Fatalf("GateStatus = %+v, want one verdict, for qa", got)
	}
	// Cached: the same verdict again.
	again, err := svc.GateStatus(ctx, "staging/app", d)
	if err != nil || len(again) != 1 || again[0].Stage != "qa" {
		t.Fatalf("second GateStatus = %+v, %v", again, err)
	}
	if _, err := svc.Evidence(ctx, "staging/app", d); err != nil {
		t.Fatalf("Evidence: %v", err)
	}

	// Nothing promotes out of production: no verdict, no error.
	if got, err := svc.GateStatus(ctx, "production/app", d); err != nil || got != nil {
		t.Fatalf("production: %+v, %v", got, err)
	}
	// No gated stage at all: the ungated service reads nothing.
	if got, err := e.svc.GateStatus(ctx, "staging/app", d); err != nil || got != nil {
		t.Fatalf("ungated: %+v, %v", got, err)
	}

	// A digest the repository does not hold.
	other := digest.FromString("other")
	_, err = svc.GateStatus(ctx, "staging/app", other)
	refusal(t, err, http.StatusNotFound, CodeNotFound, "holds no manifest")
	_, err = svc.Evidence(ctx, "staging/app", other)
	refusal(t, err, http.StatusNotFound, CodeNotFound, "holds no manifest")
	_, err = svc.GateStatus(ctx, "staging/app", "sha256:nope")
	refusal(t, err, http.StatusBadRequest, CodeInvalid, "invalid repository or digest")

	// Without pull the repository is not there, whatever it holds.
	e.grants = func(repo string) []string { return []string{"promote"} }
	_, err = svc.GateStatus(ctx, "staging/app", d)
	refusal(t, err, http.StatusNotFound, CodeNotFound, "does not exist or you may not see it")
	_, err = svc.Evidence(ctx, "staging/app", d)
	refusal(t, err, http.StatusNotFound, CodeNotFound, "does not exist or you may not see it")
}

func TestCanRollbackRelease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rel := Release{ID: "r1", Stage: "production", State: ReleaseComplete, Members: []Record{
		{Repository: "production/api", Stage: "production", Tag: "latest"},
		{Repository: "production/worker", Stage: "production", Tag: "latest"},
	}}
	if !e.svc.CanRollbackRelease(ctx, rel) {
		t.Fatal("a complete release with every permission cannot be rolled back")
	}
	pending := rel
	pending.State = ReleasePending
	if e.svc.CanRollbackRelease(ctx, pending) {
		t.Fatal("a pending release can be rolled back")
	}
	e.grants = func(repo string) []string {
		if repo == "production/worker" {
			return []string{"pull"}
		}
		return []string{"pull", "promote"}
	}
	if e.svc.CanRollbackRelease(ctx, rel) {
		t.Fatal("rollback offered without promote on one member's repository")
	}
}
