package promote

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1Image "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

func TestPromoteImageLinksWithoutCopying(t *testing.T) {
	e := newEnv(t)
	e.pushImage("staging/app:1.0", 1<<20, 3)
	want := e.digestOf("staging/app:1.0")

	e.store.enabled.Store(true)
	rec, created := e.promote(Request{Source: "staging/app:1.0", To: "production", Reason: "release"})
	e.store.enabled.Store(false)

	if !created || rec.Outcome != OutcomePromoted {
		t.Fatalf("created=%v outcome=%s, want a new promotion", created, rec.Outcome)
	}
	if got := e.digestOf("production/app:1.0"); got != want {
		t.Fatalf("production/app:1.0 = %s, staging/app:1.0 = %s", got, want)
	}
	if rec.Digest.String() != want || rec.Target != "production/app:1.0" || rec.Source != "staging/app:1.0" ||
		rec.Stage != "production" || rec.App != "app" || rec.Actor != "tester" || rec.Reason != "release" ||
		rec.PreviousDigest != "" || rec.Seq != 1 || !validID(rec.ID) || rec.At.IsZero() {
		t.Fatalf("record = %+v", rec)
	}
	// Every layer and the config can be pulled from production.
	img, err := remote.Image(e.ref("production/app:1.0"))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer from production: %v", err)
		}
		rc.Close()
	}
	// Only small metadata objects were written: no blob data.
	var total int64
	for k, n := range e.store.writes {
		if strings.HasPrefix(k, "data/") || strings.HasPrefix(k, "uploads/") {
			t.Errorf("promotion wrote blob data: %s (%d bytes)", k, n)
		}
		total += n
	}
	if total > 16<<10 {
		t.Errorf("promotion of a 3 MiB image wrote %d bytes: %v", total, e.store.writes)
	}
	got, err := e.svc.Get(context.Background(), rec.ID)
	if err != nil || got.Digest != rec.Digest || got.Seq != 1 {
		t.Fatalf("Get(%s) = %+v, %v", rec.ID, got, err)
	}
}

func TestPromoteIndexWithReferrersAndCosignTags(t *testing.T) {
	e := newEnv(t)
	idx := e.pushIndex("staging/multi:2.0")
	idxDigest, _ := idx.Digest()
	desc, err := remote.Head(e.ref("staging/multi:2.0"))
	if err != nil {
		t.Fatal(err)
	}
	// An SBOM-like artifact whose subject is the index (referrers API)...
	art, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	sbom := mutate.Subject(mutate.ConfigMediaType(art, "application/vnd.example.sbom"), *desc).(v1Image.Image)
	sbomDigest, _ := sbom.Digest()
	if err := remote.Write(e.ref("staging/multi@"+sbomDigest.String()), sbom); err != nil {
		t.Fatal(err)
	}
	// ...and a cosign-style signature tag.
	sig := e.pushImage("staging/multi:sha256-"+idxDigest.Hex+".sig", 128, 1)
	sigDigest, _ := sig.Digest()

	e.promote(Request{Source: "staging/multi:2.0", To: "production"})

	if got := e.digestOf("production/multi:2.0"); got != idxDigest.String() {
		t.Fatalf("production/multi:2.0 = %s, want %s", got, idxDigest)
	}
	manifest, _ := idx.IndexManifest()
	for _, child := range manifest.Manifests {
		img, err := remote.Image(e.ref("production/multi@" + child.Digest.String()))
		if err != nil {
			t.Fatalf("child %s not in production: %v", child.Digest, err)
		}
		if _, err := img.ConfigFile(); err != nil {
			t.Fatalf("child %s config: %v", child.Digest, err)
		}
	}
	refs, err := remote.Referrers(e.ref("production/multi@" + idxDigest.String()).Context().Digest(idxDigest.String()))
	if err != nil {
		t.Fatal(err)
	}
	rm, _ := refs.IndexManifest()
	if len(rm.Manifests) != 1 || rm.Manifests[0].Digest != sbomDigest || rm.Manifests[0].ArtifactType != "application/vnd.example.sbom" {
		t.Fatalf("referrers of the index in production = %+v, want the SBOM %s", rm.Manifests, sbomDigest)
	}
	if got := e.digestOf("production/multi:sha256-" + idxDigest.Hex + ".sig"); got != sigDigest.String() {
		t.Fatalf("signature tag in production = %s, want %s", got, sigDigest)
	}
	tags, err := e.svc.Tags(context.Background(), "production/multi")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ti := range tags {
		if ti.Tag == "2.0" {
			found = true
			if strings.Join(ti.Platforms, ",") != "linux/amd64,linux/arm64/v8" || strings.Join(ti.Stages, ",") != "staging,production" ||
				ti.Promoted == nil || ti.Promoted.Digest.String() != idxDigest.String() || ti.Size <= 4*1024 {
				t.Fatalf("tag info = %+v", ti)
			}
		}
	}
	if !found {
		t.Fatalf("Tags(production/multi) = %+v, no 2.0", tags)
	}
}

func TestNoopFixedTagsAndGuards(t *testing.T) {
	e := newEnv(t)
	e.pushImage("staging/app:v1.0", 512, 1)
	first, created := e.promote(Request{Source: "staging/app:v1.0", To: "production"})
	if !created {
		t.Fatal("first promotion was a no-op")
	}
	again, created := e.promote(Request{Source: "staging/app:v1.0", To: "production"})
	if created || again.Outcome != OutcomeNoop || again.PreviousDigest != first.Digest || again.Seq != 2 {
		t.Fatalf("second promotion of the same digest = created %v %+v, want a recorded no-op", created, again)
	}
	// v1.0 is fixed in production: a new build under the same tag is refused.
	e.pushImage("staging/app:v1.0", 512, 1)
	_, _, err := e.svc.Promote(context.Background(), Request{Source: "staging/app:v1.0", To: "production"})
	refusal(t, err, http.StatusConflict, CodeFixedTag, "never re-pointed")
	if got := e.digestOf("production/app:v1.0"); got != first.Digest.String() {
		t.Fatalf("fixed tag moved to %s", got)
	}

	// Guards.
	e.pushImage("staging/app:build-7", 512, 1)
	d7 := e.digestOf("staging/app:build-7")
	_, _, err = e.svc.Promote(context.Background(), Request{Source: "staging/app:build-7", To: "production", Tag: "stable", ExpectDigest: digest.Digest(first.Digest)})
	refusal(t, err, http.StatusConflict, CodeGuardFailed, "not the expected")
	_, _, err = e.svc.Promote(context.Background(), Request{Source: "staging/app:build-7", To: "production", Tag: "stable", ExpectPrevious: first.Digest.String()})
	refusal(t, err, http.StatusConflict, CodeGuardFailed, "does not exist")
	rec, _ := e.promote(Request{Source: "staging/app:build-7", To: "production", Tag: "stable", ExpectDigest: digest.Digest(d7), ExpectPrevious: "none"})
	_, _, err = e.svc.Promote(context.Background(), Request{Source: "staging/app:v1.0", To: "production", Tag: "stable", ExpectPrevious: "none"})
	refusal(t, err, http.StatusConflict, CodeGuardFailed, "already exists")
	// Non-fixed tags move.
	moved, _ := e.promote(Request{Source: "staging/app:v1.0", To: "production", Tag: "stable", ExpectPrevious: d7})
	if moved.PreviousDigest != rec.Digest || e.digestOf("production/app:stable") != moved.Digest.String() {
		t.Fatalf("stable did not move: %+v", moved)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	e.pushImage("staging/app:1.0", 512, 1)
	img := e.pushImage("production-like/app:1.0", 512, 1)
	layers, _ := img.Layers()
	blob, _ := layers[0].Digest()
	e.pushImage("staging/blobby:1.0", 1, 0)
	ctx := context.Background()
	cases := []struct {
		name   string
		req    Request
		status int
		code   string
		msg    string
	}{
		{"unknown tag", Request{Source: "staging/app:9.9", To: "production"}, 404, CodeNotFound, "does not exist"},
		{"unknown repository", Request{Source: "staging/nope:1.0", To: "production"}, 404, CodeNotFound, "does not exist"},
		{"edge backwards", Request{Source: "production/app:1.0", To: "staging"}, 409, CodeEdgeNotAllowed, "not configured"},
		{"no stage", Request{Source: "production-like/app:1.0", To: "production"}, 409, CodeEdgeNotAllowed, "in no stage"},
		{"unknown stage", Request{Source: "staging/app:1.0", To: "moon"}, 400, CodeInvalid, "unknown stage"},
		{"no target", Request{Source: "staging/app:1.0"}, 400, CodeInvalid, "required"},
		{"malformed source", Request{Source: "staging/App!", To: "production"}, 400, CodeInvalid, "source"},
		{"digest without tag", Request{Source: "staging/app@" + e.digestOf("staging/app:1.0"), To: "production"}, 400, CodeInvalid, "tag is required"},
		{"bad tag", Request{Source: "staging/app:1.0", To: "production", Tag: "-x"}, 400, CodeInvalid, "invalid tag"},
		{"bad guard", Request{Source: "staging/app:1.0", To: "production", ExpectDigest: "sha256:12"}, 400, CodeInvalid, "expect_digest"},
		{"blob, not manifest", Request{Source: "production-like/app@" + blob.String(), To: "production", Tag: "x"}, 409, CodeEdgeNotAllowed, "no stage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.svc.Promote(ctx, tc.req)
			refusal(t, err, tc.status, tc.code, tc.msg)
		})
	}
	// A blob digest in a staging repository: 422.
	simg := e.pushImage("staging/withblob:1.0", 512, 1)
	sl, _ := simg.Layers()
	sb, _ := sl[0].Digest()
	_, _, err := e.svc.Promote(ctx, Request{Source: "staging/withblob@" + sb.String(), To: "production", Tag: "x"})
	refusal(t, err, http.StatusUnprocessableEntity, CodeNotManifest, "blob")

	// Without the promote grant on the source, or on the target.
	e.grants = func(repo string) []string {
		if strings.HasPrefix(repo, "staging/") {
			return []string{"pull", "push"}
		}
		return []string{"pull", "promote"}
	}
	_, _, err = e.svc.Promote(ctx, Request{Source: "staging/app:1.0", To: "production"})
	refusal(t, err, http.StatusForbidden, CodeDenied, "promote needs pull and promote on staging/app")
	if e.svc.CanPromote(ctx, "staging/app", "production") {
		t.Error("CanPromote without the grant")
	}
	// Promote without pull on the source: promoting would copy what the
	// caller may not read to where it may (issue 10, finding 2).
	e.grants = func(repo string) []string {
		if strings.HasPrefix(repo, "staging/") {
			return []string{"promote"}
		}
		return []string{"pull", "promote"}
	}
	_, _, err = e.svc.Promote(ctx, Request{Source: "staging/app:1.0", To: "production"})
	refusal(t, err, http.StatusForbidden, CodeDenied, "promote needs pull and promote on staging/app")
	if e.svc.CanPromote(ctx, "staging/app", "production") {
		t.Error("CanPromote without pull on the source")
	}
	e.grants = func(repo string) []string {
		if strings.HasPrefix(repo, "staging/") {
			return []string{"pull", "promote"}
		}
		return []string{"pull"}
	}
	_, _, err = e.svc.Promote(ctx, Request{Source: "staging/app:1.0", To: "production"})
	refusal(t, err, http.StatusForbidden, CodeDenied, "promote needs promote on production/app")
	e.grants = nil
	if !e.svc.CanPromote(ctx, "staging/app", "production") || e.svc.CanPromote(ctx, "production/app", "staging") {
		t.Error("CanPromote does not follow the edges")
	}
	// Nothing reached production.
	if _, err := remote.Head(e.ref("production/app:1.0")); err == nil {
		t.Fatal("a refused promotion left production/app:1.0")
	}
}

func TestRollback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/app:a", 512, 1)
	e.pushImage("staging/app:b", 512, 1)
	first, _ := e.promote(Request{Source: "staging/app:a", To: "production", Tag: "stable"})
	second, _ := e.promote(Request{Source: "staging/app:b", To: "production", Tag: "stable"})

	if _, err := e.svc.Rollback(ctx, first.ID, ""); err == nil {
		t.Fatal("rolled back a promotion that created its tag")
	} else {
		refusal(t, err, http.StatusConflict, CodeConflict, "nothing to roll back to")
	}
	if !e.svc.CanRollback(ctx, second) || e.svc.CanRollback(ctx, first) {
		t.Error("CanRollback disagrees with Rollback")
	}
	// A rollback reads the tag's earlier digest: it needs pull and promote
	// there. Without pull the record is not even visible (404).
	for _, tc := range []struct {
		actions   []string
		status    int
		code, msg string
	}{
		{[]string{"promote"}, http.StatusNotFound, CodeNotFound, "no promotion"},
		{[]string{"pull"}, http.StatusForbidden, CodeDenied, "rollback needs pull and promote on production/app"},
	} {
		e.grants = func(string) []string { return tc.actions }
		if e.svc.CanRollback(ctx, second) {
			t.Errorf("CanRollback with only %v", tc.actions)
		}
		_, err := e.svc.Rollback(ctx, second.ID, "")
		refusal(t, err, tc.status, tc.code, tc.msg)
	}
	e.grants = nil
	rb, err := e.svc.Rollback(ctx, second.ID, "bad build")
	if err != nil {
		t.Fatal(err)
	}
	if rb.Outcome != OutcomeRolledBack || rb.Digest != first.Digest || rb.PreviousDigest != second.Digest || rb.RollbackOf != second.ID || rb.Seq != 3 {
		t.Fatalf("rollback record = %+v", rb)
	}
	if got := e.digestOf("production/app:stable"); got != first.Digest.String() {
		t.Fatalf("stable = %s after rollback, want %s", got, first.Digest)
	}
	// The digest rolled away from is still linked in production, but no
	// longer released there: the inventory says staging only.
	tags, err := e.svc.Tags(ctx, "staging/app")
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range tags {
		want := map[string]string{"a": "staging,production", "b": "staging"}[ti.Tag]
		if got := strings.Join(ti.Stages, ","); got != want {
			t.Errorf("staging/app:%s is in %q, want %q", ti.Tag, got, want)
		}
	}
	// The tag has moved since `second`: rolling it back again is refused.
	_, err = e.svc.Rollback(ctx, second.ID, "")
	refusal(t, err, http.StatusConflict, CodeGuardFailed, "has moved")
	// Fixed tags are never rolled back.
	e.promote(Request{Source: "staging/app:a", To: "production", Tag: "v1"})
	_, err = e.svc.Rollback(ctx, "0000000000000000-00000000", "")
	refusal(t, err, http.StatusNotFound, CodeNotFound, "no promotion")
	_, err = e.svc.Rollback(ctx, "../../x", "")
	refusal(t, err, http.StatusNotFound, CodeNotFound, "no promotion")

	// History: newest first, filters, pagination.
	page, err := e.svc.History(ctx, Query{Repository: "app", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 2 || page.NextCursor == "" || page.Records[0].Tag != "v1" || page.Records[1].ID != rb.ID {
		t.Fatalf("history page 1 = %+v", page)
	}
	rest, err := e.svc.History(ctx, Query{Repository: "app", Cursor: page.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Records) != 2 || rest.Records[0].ID != second.ID || rest.Records[1].ID != first.ID || rest.NextCursor != "" {
		t.Fatalf("history page 2 = %+v", rest)
	}
	stable, _ := e.svc.History(ctx, Query{Repository: "production/app", Tag: "stable"})
	if len(stable.Records) != 3 {
		t.Fatalf("history of production/app:stable = %d records", len(stable.Records))
	}
	none, _ := e.svc.History(ctx, Query{Repository: "other"})
	if len(none.Records) != 0 {
		t.Fatalf("history of another app = %+v", none)
	}
	if _, err := e.svc.History(ctx, Query{Cursor: "nope"}); err == nil {
		t.Error("History accepted a malformed cursor")
	}
}

// Concurrent promotions of different digests to one tag, through two
// instances (separate caches and locks) on one store: every one succeeds,
// the chain has no gap and its previous digests link up, and the tag is
// the newest record's digest.
func TestConcurrentPromotionsKeepTheChain(t *testing.T) {
	a := newEnv(t)
	b := newEnvOn(t, a.dir)
	const n = 20
	for i := range n {
		a.pushImage(fmt.Sprintf("staging/app:build-%d", i), 256, 1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := a
			if i%2 == 1 {
				e = b
			}
			_, _, err := e.svc.Promote(context.Background(), Request{Source: fmt.Sprintf("staging/app:build-%d", i), To: "production", Tag: "stable"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent promotion failed: %v", err)
		}
	}
	checkChain(t, a, "production/app", "stable", n)
}

func checkChain(t *testing.T, e *env, repo, tag string, n int) {
	t.Helper()
	page, err := e.svc.History(context.Background(), Query{Repository: repo, Tag: tag, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	recs := page.Records
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	bySeq := map[int64]Record{}
	for _, r := range recs {
		bySeq[r.Seq] = r
	}
	for seq := int64(1); seq <= int64(n); seq++ {
		r, ok := bySeq[seq]
		if !ok {
			t.Fatalf("no record %d in the chain", seq)
		}
		if seq == 1 && r.PreviousDigest != "" {
			t.Fatalf("record 1 has previous %s", r.PreviousDigest)
		}
		if seq > 1 && r.PreviousDigest != bySeq[seq-1].Digest {
			t.Fatalf("record %d previous %s, record %d digest %s: the chain is broken", seq, r.PreviousDigest, seq-1, bySeq[seq-1].Digest)
		}
	}
	if got := e.digestOf(repo + ":" + tag); got != bySeq[int64(n)].Digest.String() {
		t.Fatalf("%s:%s = %s, newest record says %s", repo, tag, got, bySeq[int64(n)].Digest)
	}
}

// A writer that died after claiming its record (before the tag moved)
// is rolled forward by the next promotion of the tag.
func TestRollForwardAfterCrash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/app:a", 512, 1)
	e.pushImage("staging/app:b", 512, 1)
	first, _ := e.promote(Request{Source: "staging/app:a", To: "production", Tag: "stable"})
	// Simulate the crash: tree copied and record claimed, nothing else.
	m, err := e.reg.Metadata().Resolve(ctx, "staging/app", "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.copyTree(ctx, "staging/app", "production/app", m); err != nil {
		t.Fatal(err)
	}
	crashed := Record{Source: "staging/app:b", Digest: m.Digest, Repository: "production/app", Tag: "stable", Target: "production/app:stable",
		Stage: "production", App: "app", PreviousDigest: first.Digest, Outcome: OutcomePromoted, Seq: 2, ID: newID(first.At), Actor: "tester"}
	if err := e.svc.claim(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	if got := e.digestOf("production/app:stable"); got != first.Digest.String() {
		t.Fatalf("tag moved before roll forward: %s", got)
	}
	// Re-running the promotion completes it, as a recorded no-op.
	rec, created := e.promote(Request{Source: "staging/app:b", To: "production", Tag: "stable"})
	if created || rec.Outcome != OutcomeNoop || rec.Seq != 3 {
		t.Fatalf("re-run = created %v %+v, want a no-op after the roll forward", created, rec)
	}
	checkChain(t, e, "production/app", "stable", 3)
	if _, err := e.svc.Get(ctx, crashed.ID); err != nil {
		t.Fatalf("the crashed record was not indexed by the roll forward: %v", err)
	}
}

// In a mutable stage a push may move a promoted tag: the ledger takes the
// pushed digest as the previous one and never rolls the tag back to the
// last record.
func TestPushInMutableStageIsNotRolledBack(t *testing.T) {
	e := newEnv(t)
	e.pushImage("staging/app:a", 512, 1)
	e.pushImage("staging/app:b", 512, 1)
	first, _ := e.promote(Request{Source: "staging/app:a", To: "qa", Tag: "t"})
	pushed := e.pushImage("qa/app:t", 512, 1)
	pd, _ := pushed.Digest()
	rec, created := e.promote(Request{Source: "staging/app:b", To: "qa", Tag: "t"})
	if !created || rec.PreviousDigest.String() != pd.String() || rec.Seq != 2 {
		t.Fatalf("promotion after a push = %+v, want previous %s (the push), not %s", rec, pd, first.Digest)
	}
	if got := e.digestOf("qa/app:t"); got != rec.Digest.String() {
		t.Fatalf("qa/app:t = %s, want %s", got, rec.Digest)
	}
}

// A referrer added to a child of an index after the index was promoted
// comes along when the index is promoted again (the tree is already
// there; only the new referrer is copied).
func TestRepromotionCarriesNewReferrersOfChildren(t *testing.T) {
	e := newEnv(t)
	idx := e.pushIndex("staging/multi:1")
	e.promote(Request{Source: "staging/multi:1", To: "production", Tag: "stable"})
	im, _ := idx.IndexManifest()
	child := im.Manifests[0].Digest
	desc, err := remote.Head(e.ref("staging/multi@" + child.String()))
	if err != nil {
		t.Fatal(err)
	}
	art, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	sig := mutate.Subject(mutate.ConfigMediaType(art, "application/vnd.example.sig"), *desc).(v1Image.Image)
	sigDigest, _ := sig.Digest()
	if err := remote.Write(e.ref("staging/multi@"+sigDigest.String()), sig); err != nil {
		t.Fatal(err)
	}
	rec, created := e.promote(Request{Source: "staging/multi:1", To: "production", Tag: "stable"})
	if created || rec.Outcome != OutcomeNoop {
		t.Fatalf("re-promotion = %+v", rec)
	}
	refs, err := remote.Referrers(e.ref("production/multi@" + child.String()).Context().Digest(child.String()))
	if err != nil {
		t.Fatal(err)
	}
	rm, _ := refs.IndexManifest()
	if len(rm.Manifests) != 1 || rm.Manifests[0].Digest != sigDigest {
		t.Fatalf("referrers of the child in production = %+v, want %s", rm.Manifests, sigDigest)
	}
}

// verify is the last step of every promotion: it refuses a target that
// does not serve the promoted digest, whatever the cause.
func TestVerifyCatchesAMismatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/app:a", 512, 1)
	e.pushImage("staging/app:b", 512, 1)
	rec, _ := e.promote(Request{Source: "staging/app:a", To: "production", Tag: "stable"})
	if err := e.svc.verify(ctx, rec); err != nil {
		t.Fatalf("verify of a good promotion: %v", err)
	}
	// The digest is not in the target repository.
	b := digest.Digest(e.digestOf("staging/app:b"))
	bad := rec
	bad.Digest = b
	refusal(t, e.svc.verify(ctx, bad), http.StatusConflict, CodeConflict, "does not serve")
	// The tag names another digest, and no newer record explains it.
	m, err := e.reg.Metadata().Resolve(ctx, "staging/app", "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.copyTree(ctx, "staging/app", "production/app", m); err != nil {
		t.Fatal(err)
	}
	refusal(t, e.svc.verify(ctx, bad), http.StatusConflict, CodeConflict, "names "+rec.Digest.String())
}

// outage fails every write with storage.ErrUnavailable once a ledger chain
// record has been claimed, until healed: the store going away between a
// promotion's claim and its tag write.
type outage struct {
	storage.Store
	down atomic.Bool
}

func (o *outage) fail(key string) error {
	if o.down.Load() {
		return fmt.Errorf("writing %s: %w", key, storage.ErrUnavailable)
	}
	return nil
}

func (o *outage) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := o.fail(key); err != nil {
		return storage.Info{}, err
	}
	return o.Store.Put(ctx, key, r, size)
}

func (o *outage) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := o.fail(key); err != nil {
		return storage.Info{}, err
	}
	info, err := o.Store.PutIfAbsent(ctx, key, r, size)
	if err == nil && strings.HasPrefix(key, chainsPrefix) {
		o.down.Store(true)
	}
	return info, err
}

func (o *outage) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	if err := o.fail(key); err != nil {
		return storage.Info{}, err
	}
	return o.Store.PutIfMatch(ctx, key, r, size, etag)
}

// events records what the service queued for the webhooks; its queue is
// in the store, as webhook.Outbox's is.
type events struct {
	store *outage
	mu    sync.Mutex
	ids   []string
}

func (e *events) EnqueueOnce(ctx context.Context, id string, at time.Time, event string, payload any) error {
	if err := e.store.fail("outbox/" + id); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ids = append(e.ids, id)
	return nil
}

func (e *events) has(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.ids, id)
}

// A store outage between a promotion's claim and its tag write fails the
// request (503), and the promotion is finished once the store is back —
// the tag moves and the webhook event is queued — without anyone promoting
// that tag again.
func TestClaimedPromotionFinishesAfterAnOutage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/app:a", 512, 1)
	want := e.digestOf("staging/app:a")
	e.reg.Wait() // the push's background writes read e.store.Store
	st := &outage{Store: e.store.Store}
	e.store.Store = st
	queued := &events{store: st}
	e.svc.opts.Outbox = queued

	_, _, err := e.svc.Promote(ctx, Request{Source: "staging/app:a", To: "production", Tag: "stable"})
	refusal(t, err, http.StatusServiceUnavailable, CodeUnavailable, "storage is unavailable")
	head, ok, err := e.svc.head(ctx, "production/app", "stable")
	if err != nil || !ok || head.Digest.String() != want {
		t.Fatalf("chain head after the failed promotion = %+v %v %v, want the claimed record of %s", head, ok, err, want)
	}
	st.down.Store(false)

	tagAt := func() string {
		state, _, _ := e.svc.tagState(ctx, "production/app", "stable")
		return state.Digest.String()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !queued.has(head.ID) || tagAt() != want {
		if time.Now().After(deadline) {
			t.Fatalf("10s after the store came back: event queued %v, production/app:stable = %q; want the event of %s and the tag at %s",
				queued.has(head.ID), tagAt(), head.ID, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkChain(t, e, "production/app", "stable", 1)
}

// statOutage fails every Stat with storage.ErrUnavailable once a tag has
// been written: the store going away between a promotion's tag write and
// its verification.
type statOutage struct {
	storage.Store
	down atomic.Bool
}

func (o *statOutage) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	info, err := o.Store.PutIfMatch(ctx, key, r, size, etag)
	o.arm(key, err)
	return info, err
}

func (o *statOutage) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	info, err := o.Store.PutIfAbsent(ctx, key, r, size)
	o.arm(key, err)
	return info, err
}

func (o *statOutage) arm(key string, err error) {
	if err == nil && strings.Contains(key, "/_tags/") {
		o.down.Store(true)
	}
}

func (o *statOutage) Stat(ctx context.Context, key string) (storage.Info, error) {
	if o.down.Load() {
		return storage.Info{}, fmt.Errorf("stat %s: %w", key, storage.ErrUnavailable)
	}
	return o.Store.Stat(ctx, key)
}

// An outage while a promotion verifies what it wrote is 503 unavailable
// (try again), not 409 "verification failed": the fault soak saw the 409.
func TestVerifyDuringAnOutageIsUnavailable(t *testing.T) {
	e := newEnv(t)
	e.pushImage("staging/app:a", 512, 1)
	e.reg.Wait() // the push's background writes read e.store.Store
	st := &statOutage{Store: e.store.Store}
	e.store.Store = st
	_, _, err := e.svc.Promote(context.Background(), Request{Source: "staging/app:a", To: "production", Tag: "stable"})
	if !st.down.Load() {
		t.Fatalf("the tag was never written (err %v): the outage did not start where this test means it to", err)
	}
	refusal(t, err, http.StatusServiceUnavailable, CodeUnavailable, "storage is unavailable")
}
