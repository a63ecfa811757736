package promote

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// keys lists every key under prefix.
func (e *env) keys(prefix string) []string {
	e.t.Helper()
	var out []string
	after := ""
	for {
		p, err := e.store.List(context.Background(), storage.ListOptions{Prefix: prefix, StartAfter: after})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, o := range p.Objects {
			out = append(out, o.Key)
		}
		if !p.Truncated || len(p.Objects) == 0 {
			return out
		}
		after = p.Objects[len(p.Objects)-1].Key
	}
}

// tagOf is what repo:tag names in the store ("" when absent).
func (e *env) tagOf(ref string) digest.Digest {
	e.t.Helper()
	repo, tag, _ := strings.Cut(ref, ":")
	st, ok, err := e.svc.tagState(context.Background(), repo, tag)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return st.Digest
}

func images(srcs ...string) []ReleaseImage {
	out := make([]ReleaseImage, len(srcs))
	for i, s := range srcs {
		src, tag, _ := strings.Cut(s, "=")
		out[i] = ReleaseImage{Source: src, Tag: tag}
	}
	return out
}

// TestReleaseAllOrNothing: a release whose third image is refused (a
// fixed tag naming another digest; a missing source) writes nothing at
// all; with every image valid, all three move and one release record
// names them.
func TestReleaseAllOrNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/api:1.4", 512, 1)
	e.pushImage("staging/worker:1.4", 512, 1)
	e.pushImage("staging/web:1.4", 512, 1)
	old, _ := e.promote(Request{Source: "staging/web:1.4", To: "production"})
	e.pushImage("staging/web:1.4", 512, 1) // a new build under the fixed tag
	ledgerBefore := e.keys("ledger/")
	e.reg.Wait() // the tag journal's done marks, written after the promotion returned

	for _, c := range []struct {
		name, third string
		status      int
		code, msg   string
	}{
		{"fixed tag", "staging/web:1.4", http.StatusConflict, CodeFixedTag, "production/web:1.4 is a fixed tag"},
		{"missing source", "staging/nope:1.4", http.StatusNotFound, CodeNotFound, "staging/nope:1.4 does not exist"},
	} {
		e.store.enabled.Store(true)
		_, err := e.svc.CreateRelease(ctx, ReleaseRequest{To: "production", Images: images("staging/api:1.4", "staging/worker:1.4", c.third)})
		e.store.enabled.Store(false)
		refusal(t, err, c.status, c.code, c.msg)
		e.store.mu.Lock()
		wrote := len(e.store.writes)
		e.store.mu.Unlock()
		if wrote != 0 {
			t.Fatalf("%s: the refused release wrote %d objects", c.name, wrote)
		}
		for _, ref := range []string{"production/api:1.4", "production/worker:1.4"} {
			if d := e.tagOf(ref); d != "" {
				t.Fatalf("%s: %s = %s after a refused release", c.name, ref, d)
			}
		}
		if got := e.keys("ledger/"); strings.Join(got, ",") != strings.Join(ledgerBefore, ",") {
			t.Fatalf("%s: ledger changed: %d keys -> %d", c.name, len(ledgerBefore), len(got))
		}
	}
	if e.tagOf("production/web:1.4") != old.Digest {
		t.Fatal("the fixed tag moved")
	}

	e.pushImage("staging/web:1.5", 512, 1)
	rel, err := e.svc.CreateRelease(ctx, ReleaseRequest{To: "production", Reason: "1.4 train",
		Images: images("staging/api:1.4", "staging/worker:1.4", "staging/web:1.5")})
	if err != nil {
		t.Fatal(err)
	}
	if rel.State != ReleaseComplete || len(rel.Members) != 3 || rel.Stage != "production" || rel.Actor != "tester" || rel.Reason != "1.4 train" || !validID(rel.ID) {
		t.Fatalf("release = %+v", rel)
	}
	for i, src := range []string{"staging/api:1.4", "staging/worker:1.4", "staging/web:1.5"} {
		m := rel.Members[i]
		target := strings.Replace(src, "staging/", "production/", 1)
		if m.Release != rel.ID || m.Source != src || m.Target != target || m.Outcome != OutcomePromoted ||
			m.Digest.String() != e.digestOf(src) || e.tagOf(target) != m.Digest {
			t.Fatalf("member %d = %+v (tag %s)", i, m, e.tagOf(target))
		}
		if got, err := e.svc.Get(ctx, m.ID); err != nil || got.Release != rel.ID {
			t.Fatalf("member record %s by id: %+v %v", m.ID, got, err)
		}
	}
	if ks := e.keys(releasesPrefix); len(ks) != 1 || ks[0] != releaseKey(rel.ID) {
		t.Fatalf("release keys %v", ks)
	}
	if ks := e.keys(pendingPrefix); len(ks) != 0 {
		t.Fatalf("pending markers left: %v", ks)
	}
	got, err := e.svc.GetRelease(ctx, rel.ID)
	if err != nil || got.State != ReleaseComplete || len(got.Members) != 3 || got.Members[2].ID != rel.Members[2].ID {
		t.Fatalf("GetRelease = %+v, %v", got, err)
	}
	page, err := e.svc.Releases(ctx, 0, "")
	if err != nil || len(page.Releases) != 1 || page.Releases[0].ID != rel.ID {
		t.Fatalf("Releases = %+v, %v", page, err)
	}
}

// crashAfter runs a release's writer up to its commit point and applies
// only the first n members, as a writer killed there would leave it. The
// release is dated age ago (so recovery takes it for dead).
func (e *env) crashAfter(req ReleaseRequest, n int, age time.Duration) string {
	e.t.Helper()
	ctx := context.Background()
	plan, st, err := e.svc.planRelease(ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.svc.copyMembers(ctx, plan); err != nil {
		e.t.Fatal(err)
	}
	d := releaseDoc{Stage: st.Name, Actor: "tester", Reason: req.Reason, State: ReleasePending, Plan: plan}
	d.At = time.Now().Add(-age).UTC()
	d.ID = newID(d.At)
	if _, err := e.store.PutIfAbsent(ctx, pendingKey(d.ID), http.NoBody, 0); err != nil {
		e.t.Fatal(err)
	}
	if err := e.svc.writeRelease(ctx, &d); err != nil {
		e.t.Fatal(err)
	}
	for i := range n {
		if _, err := e.svc.applyMember(ctx, &d, i, st); err != nil {
			e.t.Fatal(err)
		}
	}
	return d.ID
}

// TestReleaseRecovery: a writer died after the commit point with one of
// three members applied. Another instance's GetRelease finishes it (all
// three move, state complete, marker gone); doing it again changes
// nothing: each tag's chain holds one record of the release.
func TestReleaseRecovery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, r := range []string{"staging/api:2.0", "staging/worker:2.0", "staging/web:2.0"} {
		e.pushImage(r, 512, 1)
	}
	req := ReleaseRequest{To: "production", Images: images("staging/api:2.0", "staging/worker:2.0", "staging/web:2.0")}
	id := e.crashAfter(req, 1, 0)
	if e.tagOf("production/api:2.0") == "" || e.tagOf("production/worker:2.0") != "" {
		t.Fatal("the simulated crash did not leave one member applied")
	}

	other := newEnvOn(t, e.dir) // a restarted process
	rel, err := other.svc.GetRelease(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rel.State != ReleaseComplete || len(rel.Members) != 3 {
		t.Fatalf("release after recovery = %+v", rel)
	}
	for i, r := range []string{"api", "worker", "web"} {
		target := "production/" + r + ":2.0"
		if d := e.tagOf(target); d.String() != e.digestOf("staging/"+r+":2.0") || rel.Members[i].Digest != d || rel.Members[i].Release != id {
			t.Fatalf("%s = %s, member %+v", target, d, rel.Members[i])
		}
		checkChain(t, e, "production/"+r, "2.0", 1)
	}
	if ks := e.keys(pendingPrefix); len(ks) != 0 {
		t.Fatalf("pending markers left: %v", ks)
	}
	// Finishing again (another replica that read it pending) writes no
	// second member record.
	d, err := e.svc.readRelease(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.Members = ReleasePending, nil
	if err := e.svc.finishRelease(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"api", "worker", "web"} {
		checkChain(t, e, "production/"+r, "2.0", 1)
	}
}

// TestReleaseRecoveryBehindAClock: the writer that applied the first
// member ran ten minutes behind the clock that dated the release, so the
// member's record is older than the release by more than releaseSkew and
// is its tag's chain head. The finisher still finds it (the commit's
// guard answers from the head without listing the chain): one record of
// the release per tag.
func TestReleaseRecoveryBehindAClock(t *testing.T) {
	e := newEnv(t)
	for _, r := range []string{"staging/api:2.1", "staging/worker:2.1"} {
		e.pushImage(r, 512, 1)
	}
	e.svc.opts.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
	id := e.crashAfter(ReleaseRequest{To: "production", Images: images("staging/api:2.1", "staging/worker:2.1")}, 1, 0)
	other := newEnvOn(t, e.dir)
	rel, err := other.svc.GetRelease(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if rel.State != ReleaseComplete || len(rel.Members) != 2 {
		t.Fatalf("release after recovery = %+v", rel)
	}
	for _, r := range []string{"api", "worker"} {
		checkChain(t, e, "production/"+r, "2.1", 1)
	}
}

// TestReleaseRecoveredByAnyPromotion: a release whose writer died is
// finished by the next promotion on the service, of anything, and by the
// list of releases.
func TestReleaseRecoveredByAnyPromotion(t *testing.T) {
	e := newEnv(t)
	for _, r := range []string{"staging/api:3.0", "staging/worker:3.0", "staging/other:1.0"} {
		e.pushImage(r, 512, 1)
	}
	id := e.crashAfter(ReleaseRequest{To: "production", Images: images("staging/api:3.0", "staging/worker:3.0")}, 0, time.Minute)
	if e.tagOf("production/api:3.0") != "" {
		t.Fatal("a member moved before recovery")
	}
	e.promote(Request{Source: "staging/other:1.0", To: "qa"})
	if e.tagOf("production/api:3.0") == "" || e.tagOf("production/worker:3.0") == "" {
		t.Fatal("the promotion did not finish the pending release")
	}
	d, err := e.svc.readRelease(context.Background(), id)
	if err != nil || d.State != ReleaseComplete {
		t.Fatalf("release %s: %+v %v", id, d, err)
	}

	// A marker whose writer died before the commit point: fenced off as
	// aborted with nothing promoted, not listed.
	dead := newID(time.Now().Add(-time.Minute))
	if _, err := e.store.PutIfAbsent(context.Background(), pendingKey(dead), http.NoBody, 0); err != nil {
		t.Fatal(err)
	}
	page, err := e.svc.Releases(context.Background(), 10, "")
	if err != nil || len(page.Releases) != 1 || page.Releases[0].ID != id {
		t.Fatalf("Releases = %+v, %v", page, err)
	}
	if ks := e.keys(pendingPrefix); len(ks) != 0 {
		t.Fatalf("pending markers left: %v", ks)
	}
	if d, err := e.svc.readRelease(context.Background(), dead); err != nil || d.State != ReleaseAborted {
		t.Fatalf("fenced release: %+v %v", d, err)
	}
}

// TestReleaseRollback: rolling back a release re-points every member to
// its previous digest as one new release; refused, nothing moved, when a
// member's tag moved since, or a member created its tag.
func TestReleaseRollback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/api:1", 512, 1)
	e.pushImage("staging/worker:1", 512, 1)
	v1api, _ := e.promote(Request{Source: "staging/api:1", To: "production", Tag: "stable"})
	v1worker, _ := e.promote(Request{Source: "staging/worker:1", To: "production", Tag: "stable"})
	e.pushImage("staging/api:2", 512, 1)
	e.pushImage("staging/worker:2", 512, 1)
	two := ReleaseRequest{To: "production", Images: images("staging/api:2=stable", "staging/worker:2=stable")}
	rel, err := e.svc.CreateRelease(ctx, two)
	if err != nil {
		t.Fatal(err)
	}
	back, err := e.svc.RollbackRelease(ctx, rel.ID, "bad train")
	if err != nil {
		t.Fatal(err)
	}
	if back.RollbackOf != rel.ID || back.State != ReleaseComplete || len(back.Members) != 2 || back.Reason != "bad train" {
		t.Fatalf("rollback release = %+v", back)
	}
	for i, want := range []Record{v1api, v1worker} {
		m := back.Members[i]
		if m.Outcome != OutcomeRolledBack || m.RollbackOf != rel.Members[i].ID || m.Release != back.ID || m.Digest != want.Digest ||
			e.tagOf(m.Target) != want.Digest {
			t.Fatalf("member %d = %+v, tag %s, want %s", i, m, e.tagOf(m.Target), want.Digest)
		}
	}

	// Again to 2, then api:stable moves on its own: the release cannot be
	// rolled back, and worker stays where it is.
	rel, err = e.svc.CreateRelease(ctx, two)
	if err != nil {
		t.Fatal(err)
	}
	e.pushImage("staging/api:3", 512, 1)
	e.promote(Request{Source: "staging/api:3", To: "production", Tag: "stable"})
	ledger := len(e.keys("ledger/"))
	_, err = e.svc.RollbackRelease(ctx, rel.ID, "")
	refusal(t, err, http.StatusConflict, CodeGuardFailed, "production/api:stable has moved since release")
	if e.tagOf("production/worker:stable") != rel.Members[1].Digest || len(e.keys("ledger/")) != ledger {
		t.Fatal("a refused rollback moved something")
	}

	// A member that created its tag: nothing to roll back to.
	e.pushImage("staging/api:4", 512, 1)
	created, err := e.svc.CreateRelease(ctx, ReleaseRequest{To: "qa", Images: images("staging/api:4", "staging/worker:2")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.RollbackRelease(ctx, created.ID, "")
	refusal(t, err, http.StatusConflict, CodeConflict, "did not exist before release")
}

// TestReleaseValidation: refusals before anything is written.
func TestReleaseValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/api:1.0", 512, 1)
	many := make([]ReleaseImage, maxReleaseImages+1)
	for i := range many {
		many[i] = ReleaseImage{Source: "staging/api:1.0"}
	}
	for _, c := range []struct {
		name   string
		req    ReleaseRequest
		status int
		code   string
		msg    string
	}{
		{"no stage", ReleaseRequest{Images: images("staging/api:1.0")}, 400, CodeInvalid, "required"},
		{"unknown stage", ReleaseRequest{To: "moon", Images: images("staging/api:1.0")}, 400, CodeInvalid, "unknown stage"},
		{"no images", ReleaseRequest{To: "production"}, 400, CodeInvalid, "at least one image"},
		{"too many", ReleaseRequest{To: "production", Images: many}, 400, CodeInvalid, "at most 50"},
		{"duplicate target", ReleaseRequest{To: "production", Images: images("staging/api:1.0", "staging/api:1.0")}, 400, CodeInvalid, "both target production/api:1.0"},
		{"digest without tag", ReleaseRequest{To: "production", Images: images("staging/api@" + e.digestOf("staging/api:1.0"))}, 400, CodeInvalid, "tag is required"},
		{"edge", ReleaseRequest{To: "staging", Images: images("staging/api:1.0")}, 409, CodeEdgeNotAllowed, "not configured"},
	} {
		_, err := e.svc.CreateRelease(ctx, c.req)
		refusal(t, err, c.status, c.code, c.msg)
	}
	e.grants = func(repo string) []string {
		if strings.HasPrefix(repo, "production/") {
			return []string{"pull"}
		}
		return []string{"pull", "promote"}
	}
	_, err := e.svc.CreateRelease(ctx, ReleaseRequest{To: "production", Images: images("staging/api:1.0")})
	refusal(t, err, http.StatusForbidden, CodeDenied, "the target")
	if ks := e.keys("ledger/"); len(ks) != 0 {
		t.Fatalf("refusals wrote %v", ks)
	}
}

// commitOnly runs a release's writer up to its commit point and returns
// the stored release, as the writer would go on to apply it.
func (e *env) commitOnly(req ReleaseRequest) (*releaseDoc, error) {
	e.t.Helper()
	id := e.crashAfter(req, 0, 0)
	return e.svc.readRelease(context.Background(), id)
}

// TestReleaseAbortedByARacingFixedTag: between validation and apply, a
// promotion creates a member's fixed tag with another digest. The member
// is impossible; it is applied first (its tag did not exist at
// validation), so the release aborts with nothing moved.
func TestReleaseAbortedByARacingFixedTag(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/api:v5", 512, 1)
	e.pushImage("staging/worker:edge", 512, 1)
	d, err := e.commitOnly(ReleaseRequest{To: "production", Images: images("staging/worker:edge", "staging/api:v5")})
	if err != nil {
		t.Fatal(err)
	}
	e.pushImage("staging/api:v5", 512, 1) // another build, promoted by someone else first
	racer, _ := e.promote(Request{Source: "staging/api:v5", To: "production"})
	if err := e.svc.finishRelease(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d.State != ReleaseAborted || !strings.Contains(d.Error, "production/api:v5") || !strings.Contains(d.Error, "fixed tag") || len(d.Members) != 0 {
		t.Fatalf("release = %+v", d)
	}
	if e.tagOf("production/worker:edge") != "" || e.tagOf("production/api:v5") != racer.Digest {
		t.Fatal("an aborted release moved a tag")
	}
	if ks := e.keys(pendingPrefix); len(ks) != 0 {
		t.Fatalf("pending markers left: %v", ks)
	}
	if rel, err := e.svc.GetRelease(ctx, d.ID); err != nil || rel.State != ReleaseAborted {
		t.Fatalf("GetRelease = %+v, %v", rel, err)
	}
}

// TestReleaseCompensation: a release found aborting after a member moved
// re-points that member to its previous digest (once, however often it is
// finished), and leaves a member that created its tag.
func TestReleaseCompensation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/api:1", 512, 1)
	before, _ := e.promote(Request{Source: "staging/api:1", To: "production", Tag: "stable"})
	e.pushImage("staging/api:2", 512, 1)
	e.pushImage("staging/worker:2", 512, 1)
	id := e.crashAfter(ReleaseRequest{To: "production", Images: images("staging/api:2=stable", "staging/worker:2=stable")}, 2, 0)
	d, err := e.svc.readRelease(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.Error = releaseAborting, "test"
	if err := e.svc.writeRelease(ctx, d); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d, err := e.svc.readRelease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.State == ReleaseAborted {
			d.State = releaseAborting // a second finisher that read it aborting
		}
		if err := e.svc.finishRelease(ctx, d); err != nil {
			t.Fatal(err)
		}
		if d.State != ReleaseAborted || len(d.Members) != 3 {
			t.Fatalf("release = %+v", d)
		}
		back := d.Members[1]
		if back.RollbackOf != d.Members[0].ID || back.Outcome != OutcomeRolledBack || back.Release != id || back.Digest != before.Digest {
			t.Fatalf("compensation = %+v", back)
		}
	}
	if e.tagOf("production/api:stable") != before.Digest {
		t.Fatal("the moved member was not re-pointed")
	}
	checkChain(t, e, "production/api", "stable", 3)
	checkChain(t, e, "production/worker", "stable", 1)
}

// TestRacingReleasesEndAtTheLaterOne: two releases over the same tags,
// applied interleaved in the worst order (the later one first, the
// earlier one after): every tag ends at the later release, and the
// earlier one's members are superseded, not applied.
func TestRacingReleasesEndAtTheLaterOne(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, r := range []string{"staging/api:a", "staging/worker:a", "staging/api:b", "staging/worker:b"} {
		e.pushImage(r, 512, 1)
	}
	earlier, err := e.commitOnly(ReleaseRequest{To: "production", Images: images("staging/api:a=stable", "staging/worker:a=stable")})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	later, err := e.svc.CreateRelease(ctx, ReleaseRequest{To: "production", Images: images("staging/api:b=stable", "staging/worker:b=stable")})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.finishRelease(ctx, earlier); err != nil {
		t.Fatal(err)
	}
	if earlier.State != ReleaseComplete {
		t.Fatalf("earlier release = %+v", earlier)
	}
	for i, m := range earlier.Members {
		if m.Outcome != OutcomeSuperseded || m.ID != "" || e.tagOf(m.Target) != later.Members[i].Digest {
			t.Fatalf("earlier member %d = %+v; tag %s, later release %s", i, m, e.tagOf(m.Target), later.Members[i].Digest)
		}
	}
	checkChain(t, e, "production/api", "stable", 1)
}

// TestMarkerOfASettledReleaseIsCleared: a writer that died after storing
// its release complete, before deleting the marker, leaves a marker that
// recovery deletes.
func TestMarkerOfASettledReleaseIsCleared(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/api:7", 512, 1)
	id := e.crashAfter(ReleaseRequest{To: "production", Images: images("staging/api:7")}, 1, time.Minute)
	d, err := e.svc.readRelease(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.svc.applyMember(ctx, d, 0, testStages[2])
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.Members = ReleaseComplete, []Record{m}
	if err := e.svc.writeRelease(ctx, d); err != nil {
		t.Fatal(err)
	}
	e.svc.recoverReleases(ctx)
	if ks := e.keys(pendingPrefix); len(ks) != 0 {
		t.Fatalf("pending markers left: %v", ks)
	}
}
