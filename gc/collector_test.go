package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/tombstone"
)

// An untagged manifest is freed with the links, descriptors and data of
// its blobs; a blob it shares with a tagged image stays; a second run
// right after frees nothing.
func TestUntaggedImageFreed(t *testing.T) {
	e := newEnv(t)
	kept := e.image("app", "v1", "kept", nil, "shared", "only-kept")
	gone := e.image("app", "", "gone", nil, "shared", "only-gone")
	keptKeys := e.imageKeys("app", kept.Digest)
	goneKeys := e.imageKeys("app", gone.Digest)
	shared := e.blobKeys("app", e.pushBlob("app", []byte("shared")).Digest)

	rep := e.run(Options{})
	e.wantPresent(keptKeys...)
	e.wantPresent(shared...)
	var freed []string
	for _, k := range goneKeys {
		if !slices.Contains(shared, k) {
			freed = append(freed, k)
		}
	}
	e.wantGone(freed...)
	if got := sorted(rep.Deleted); !slices.Equal(got, sorted(freed)) {
		t.Errorf("report lists %q, want %q", got, sorted(freed))
	}
	if rep.Freed.Objects != int64(len(freed)) || rep.Freed.Bytes <= 0 || rep.Examined.Objects <= rep.Freed.Objects {
		t.Errorf("report counts: %+v", rep)
	}
	if rep.Finished.IsZero() || rep.Error != "" || rep.Pending != 0 {
		t.Errorf("final report: %+v", rep)
	}
	e.verify()

	again := e.run(Options{})
	if again.Freed.Objects != 0 || len(again.Deleted) != 0 {
		t.Errorf("second run freed %+v %q", again.Freed, again.Deleted)
	}
	reps, err := ListReports(context.Background(), e.store, 0)
	if err != nil || len(reps) != 2 || reps[0].Run != again.Run || reps[1].Run != rep.Run {
		t.Errorf("ListReports: %v %+v", err, reps)
	}
}

// Objects younger than grace are roots; once older they are freed.
func TestGraceKeepsYoungObjects(t *testing.T) {
	e := newEnv(t)
	gone := e.image("app", "", "young", nil, "layer")
	keys := e.imageKeys("app", gone.Digest)
	rep := e.run(Options{Grace: time.Hour})
	e.wantPresent(keys...)
	if rep.Freed.Objects != 0 {
		t.Errorf("freed %+v", rep.Freed)
	}
	e.age(2*time.Hour, keys...)
	e.run(Options{Grace: time.Hour})
	e.wantGone(keys...)
	e.verify()
}

// Options.GraceFor (retention's untagged_after) holds an untagged
// manifest of its repository past Grace; other repositories keep Grace,
// and Grace stays the floor.
func TestGraceForUntaggedManifests(t *testing.T) {
	e := newEnv(t)
	held := e.image("held/app", "", "held", nil, "held-layer")
	gone := e.image("other/app", "", "gone", nil, "gone-layer")
	young := e.image("short/app", "", "young", nil, "young-layer")
	heldKeys := e.imageKeys("held/app", held.Digest)
	goneKeys := e.imageKeys("other/app", gone.Digest)
	youngKeys := e.imageKeys("short/app", young.Digest)
	e.age(10*time.Minute, append(append(heldKeys, goneKeys...), youngKeys...)...)
	graceFor := func(repo string) time.Duration {
		switch repo {
		case "held/app":
			return time.Hour
		case "short/app":
			return time.Minute // shorter than Grace: Grace applies
		}
		return 0
	}
	e.run(Options{GraceFor: graceFor})
	e.wantPresent(heldKeys...)
	e.wantGone(goneKeys...)
	e.wantGone(youngKeys...)

	young2 := e.image("short/app", "", "young2", nil, "young2-layer")
	young2Keys := e.imageKeys("short/app", young2.Digest)
	e.age(10*time.Minute, young2Keys...)
	e.run(Options{Grace: time.Hour, GraceFor: graceFor})
	e.wantPresent(young2Keys...)

	e.age(2*time.Hour, heldKeys...)
	e.run(Options{GraceFor: graceFor})
	e.wantGone(heldKeys...)
	e.verify()
}

// An index keeps its children; an untagged index goes with them.
func TestIndexChildren(t *testing.T) {
	e := newEnv(t)
	a := e.image("app", "", "amd64", nil, "la")
	b := e.image("app", "", "arm64", nil, "lb")
	idx := e.index("app", "v1", a, b)
	c := e.image("app", "", "other", nil, "lc")
	orphanIdx := e.index("app", "", c)
	kept := append(e.imageKeys("app", a.Digest), e.imageKeys("app", b.Digest)...)
	kept = append(kept, manifestKeys("app", idx.Digest)...)
	gone := append(e.imageKeys("app", c.Digest), manifestKeys("app", orphanIdx.Digest)...)
	e.run(Options{})
	e.wantPresent(kept...)
	e.wantGone(gone...)
	e.verify()
}

// A referrer of a live subject stays; one of a freed subject goes
// (follow_subject), or stays with KeepReferrers.
func TestReferrers(t *testing.T) {
	for _, keep := range []bool{false, true} {
		e := newEnv(t)
		live := e.image("app", "v1", "subject", nil, "l1")
		sig := e.image("app", "", "signature", &live, "sig1")
		dead := e.image("app", "", "dead-subject", nil, "l2")
		deadSig := e.image("app", "", "dead-signature", &dead, "sig2")
		liveKeys := append(e.imageKeys("app", live.Digest), e.imageKeys("app", sig.Digest)...)
		deadSigKeys := e.imageKeys("app", deadSig.Digest)
		deadKeys := e.imageKeys("app", dead.Digest)
		entry := "repositories/app/_referrers/sha256/" + dead.Digest.Encoded() + "/sha256-" + deadSig.Digest.Encoded()
		e.wantPresent(entry)

		e.run(Options{KeepReferrers: keep})
		e.wantPresent(liveKeys...)
		e.wantGone(deadKeys...)
		if keep {
			e.wantPresent(deadSigKeys...)
			e.wantPresent(entry)
		} else {
			e.wantGone(deadSigKeys...)
			e.wantGone(entry)
		}
		e.verify()
	}
}

// A digest a promotion ledger record names in a repository stays there.
func TestLedgerDigestsKept(t *testing.T) {
	e := newEnv(t)
	prev := e.image("prod/app", "", "previous", nil, "old-layer")
	other := e.image("staging/app", "", "previous", nil, "old-layer")
	e.writeLedgerRecord("prod/app", prev.Digest, 1)
	keys := e.imageKeys("prod/app", prev.Digest)
	otherLink := manifestKeys("staging/app", other.Digest)[0]
	e.run(Options{})
	e.wantPresent(keys...)
	e.wantGone(otherLink) // the record names the digest in prod/app only
	e.verify()
}

// A dry run deletes nothing and lists exactly what a real run then frees.
func TestDryRun(t *testing.T) {
	e := newEnv(t)
	e.image("app", "v1", "kept", nil, "shared")
	e.image("app", "", "gone", nil, "shared", "own")
	s := e.image("app", "", "gone-subject", nil, "s")
	e.image("app", "", "gone-referrer", &s, "r")
	e.index("other", "", e.image("other", "", "child", nil, "c"))
	orphan := "data/ab/ab00000000000000000000000000000000000000000000000000000000000000"
	e.putData(orphan)
	e.age(3*time.Hour, orphan)
	before := e.registryKeys()

	dry := e.run(Options{DryRun: true})
	if got := e.registryKeys(); !slices.Equal(got, before) {
		t.Fatalf("dry run changed the store:\n%q\n%q", before, got)
	}
	if len(e.keys(tombstone.Prefix)) > 0 || len(e.keys("gc/sweeps/")) > 0 {
		t.Errorf("dry run wrote tombstones or a sweep entry")
	}
	real := e.run(Options{})
	if len(dry.Deleted) == 0 || !slices.Equal(sorted(dry.Deleted), sorted(real.Deleted)) {
		t.Errorf("dry run listed\n%q\nreal run deleted\n%q", sorted(dry.Deleted), sorted(real.Deleted))
	}
	if dry.Freed != real.Freed || !dry.DryRun || real.DryRun {
		t.Errorf("freed: dry %+v, real %+v", dry.Freed, real.Freed)
	}
	e.wantGone(orphan)
	e.verify()
}

// Data named by no descriptor and no session goes once old enough; data
// a session names stays.
func TestOrphanData(t *testing.T) {
	e := newEnv(t)
	old := "data/ab/ab11111111111111111111111111111111111111111111111111111111111111"
	young := "data/ab/ab22222222222222222222222222222222222222222222222222222222222222"
	inSession := "data/cd/cd3333333333333333333333"
	for _, k := range []string{old, young, inSession} {
		e.putData(k)
	}
	e.putObject("uploads/sess", `{"id":"sess","segments":[{"key":"`+inSession+`","size":4}]}`)
	e.age(100*time.Minute, old, inSession)
	e.age(30*time.Minute, young)
	rep := e.run(Options{UploadsPurgeAfter: time.Hour})
	e.wantPresent(old, young, inSession) // purge_after 1h + 1h margin: 100 min is not enough
	e.age(3*time.Hour, old, inSession)
	rep = e.run(Options{UploadsPurgeAfter: time.Hour})
	e.wantGone(old)
	e.wantPresent(young, inSession)
	if !slices.Equal(rep.Deleted, []string{old}) {
		t.Errorf("deleted %q", rep.Deleted)
	}
}

// A run killed between stages leaves the store consistent; the next run
// finishes the work. So does a run that died after committing a
// tombstone (a deleting tombstone is finished by the next run), and a
// marked tombstone of a dead run is removed.
func TestKilledRunThenFullRun(t *testing.T) {
	e := newEnv(t)
	kept := e.image("app", "v1", "kept", nil, "shared")
	gone := e.image("app", "", "gone", nil, "shared", "own")
	keptKeys := e.imageKeys("app", kept.Digest)
	goneKeys := e.imageKeys("app", gone.Digest)
	e.reg.Wait()

	ctx, cancel := context.WithCancel(context.Background())
	stages := 0
	c := e.collector(Options{Progress: func(Report) {
		if stages++; stages == 1 {
			cancel()
		}
	}})
	rep, err := c.Run(ctx)
	if !errors.Is(err, context.Canceled) || rep.Error == "" {
		t.Fatalf("killed run: %v %+v", err, rep)
	}
	e.wantGone(manifestKeys("app", gone.Digest)[0]) // stage 1 ran
	e.wantPresent(recordKeys(goneKeys)...)          // stage 2 did not
	problems := e.verifyProblems()
	if len(problems) > 0 {
		t.Fatalf("after the killed run: %q", problems)
	}

	e.run(Options{})
	e.wantPresent(keptKeys...)
	var freed []string
	for _, k := range goneKeys {
		if !slices.Contains(keptKeys, k) {
			freed = append(freed, k)
		}
	}
	e.wantGone(freed...)
	e.verify()
}

// recordKeys keeps the record and descriptor keys (not links) of keys.
func recordKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if len(k) > 6 && (k[:6] == "blobs/" || k[:10] == "manifests/") {
			out = append(out, k)
		}
	}
	return out
}

var _ = v1.Descriptor{}

// A descriptor whose last link a run removed waits LinkTTL (replicas may
// still serve it from a remembered link): the next run frees it.
func TestUnlinkedDescriptorWaitsLinkTTL(t *testing.T) {
	e := newEnv(t)
	gone := e.image("app", "", "gone", nil, "layer")
	keys := e.imageKeys("app", gone.Digest)
	var links, records []string
	for _, k := range keys {
		if strings.HasPrefix(k, "repositories/") || strings.HasPrefix(k, "manifests/") {
			links = append(links, k)
		} else {
			records = append(records, k)
		}
	}
	e.run(Options{LinkTTL: time.Hour})
	e.wantGone(links...)
	e.wantPresent(records...)
	e.run(Options{LinkTTL: time.Hour})
	e.wantGone(records...)
	e.verify()
}

// The report is stored from the start of a run, updated after each stage
// (Progress sees the same), and final at the end; ListReports lists the
// newest first, at most n.
func TestReportsDuringRun(t *testing.T) {
	e := newEnv(t)
	e.image("app", "", "gone", nil, "layer")
	var seen []Report
	rep := e.run(Options{Progress: func(r Report) {
		stored, err := ListReports(context.Background(), e.store, 1)
		if err != nil || len(stored) != 1 || stored[0].Run != r.Run || stored[0].Freed != r.Freed {
			t.Errorf("stored %+v, err %v; progress %+v", stored, err, r)
		}
		seen = append(seen, r)
	}})
	if len(seen) != 4 || !seen[0].Finished.IsZero() || seen[0].Freed.Objects == 0 || seen[3].Finished.IsZero() {
		t.Errorf("progress reports: %+v", seen)
	}
	second := e.run(Options{})
	all, err := ListReports(context.Background(), e.store, 0)
	if err != nil || len(all) != 2 || all[0].Run != second.Run || all[1].Run != rep.Run || all[1].Finished.IsZero() {
		t.Errorf("ListReports: %v %+v", err, all)
	}
}

// A finished run keeps the newest KeptReports reports, its own first.
func TestRunPrunesOldReports(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old := time.Now().Add(-time.Hour)
	for i := 0; i < KeptReports+5; i++ {
		rep := Report{Run: fmt.Sprintf("old%03d", i), Started: old.Add(time.Duration(i) * time.Second)}
		if err := WriteReport(ctx, e.store, rep); err != nil {
			t.Fatal(err)
		}
	}
	rep := e.run(Options{})
	reps, err := ListReports(ctx, e.store, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != KeptReports || reps[0].Run != rep.Run {
		t.Fatalf("%d reports left, newest %q; want %d, %q", len(reps), reps[0].Run, KeptReports, rep.Run)
	}
	// The oldest go first: old000..old005 are gone, old104 (the newest
	// of the old ones) stays.
	if last := reps[len(reps)-1].Run; last != "old006" {
		t.Errorf("oldest report kept is %q, want old006", last)
	}
}
