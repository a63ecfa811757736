package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/storage"
)

// The online collector under load: two replicas on one MinIO bucket behind
// a round-robin load balancer; `slipway gc` (a third process, with grace
// 0s: everything unreferenced is collectable at once) runs back to back for
// the whole test while gcClients clients push images that share layers,
// push again images whose tags were deleted (the race: their blobs and
// manifests may be under a tombstone right then), delete tags and promote.
// Afterwards every tag that exists pulls whole with its digest from both
// replicas, every deleted tag is gone, every digest the ledger names pulls,
// registry.Verify is clean, a final collection leaves no garbage behind
// (checkNoGarbage), and the collector did free something during the run.
const gcClients = 20

// gcPushTries bounds a client's retries of one push: a push racing the
// deletion of what it relies on gets a retryable error (404 on the
// manifest PUT) and succeeds on a later try.
const gcPushTries = 5

type gcImage struct {
	repo, tag string
	img       v1.Image
	digest    v1.Hash
}

type gcSoak struct {
	lb     *harness.RoundRobinProxy
	ci     harness.Credentials
	admin  harness.Credentials
	shared []v1.Layer

	mu       sync.Mutex
	live     map[string]gcImage // repo:tag -> what it must name
	deleted  map[string]bool    // repo:tag deleted (and not pushed again)
	problems []string

	pushes, repushes, deletes, promotions, retries, dockerPushes atomic.Int64
}

// digestLine is what docker push prints last: "<tag>: digest: sha256:… size: N".
var digestLine = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`)

// dockerClient pushes the docker-built images in turn; a pushed tag is
// deleted through /v2/ every other time, so the next push of that image
// races the collection of what the deleted tag held. A push that fails is
// retried (docker reports the registry's retryable 404 as a failure).
func (s *gcSoak) dockerClient(tools *harness.Tools, refs []string, deadline time.Time) {
	for n := 0; time.Now().Before(deadline); n++ {
		ref := refs[n%len(refs)]
		var out string
		var err error
		for try := 1; try <= gcPushTries; try++ {
			if out, err = tools.Exec(harness.Cmd{Args: []string{"docker", "push", ref}}); err == nil {
				break
			}
			s.retries.Add(1)
		}
		m := digestLine.FindStringSubmatch(out)
		if err != nil || m == nil {
			s.fail("docker push %s: %v\n%s", ref, err, out)
			return
		}
		d, _ := v1.NewHash(m[1])
		repoTag := strings.TrimPrefix(ref, strings.TrimPrefix(s.lb.URL(), "http://")+"/")
		repo, tag, _ := strings.Cut(repoTag, ":")
		img := gcImage{repo: repo, tag: tag, digest: d}
		s.mu.Lock()
		s.live[repoTag] = img
		delete(s.deleted, repoTag)
		s.mu.Unlock()
		s.dockerPushes.Add(1)
		if n%2 == 1 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			s.deleteTag(ctx, img)
			cancel()
		}
	}
}

func TestGCOnline(t *testing.T) {
	harness.SlipwayBinary(t)
	dur := 60 * time.Second
	if v := os.Getenv("SLIPWAY_GC_SOAK_DURATION"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil || dur <= 0 {
			t.Fatalf("SLIPWAY_GC_SOAK_DURATION=%q: want a positive duration", v)
		}
	}
	m := harness.StartMinIO(t)
	t.Cleanup(func() { _ = m.Kill() })
	a := harness.StartOpts(t, harness.Options{S3: &harness.S3{MinIO: m}, NoPublicURL: true,
		ExtraConfig: "gc:\n  grace: 0s\n"})
	b := a.StartReplica(t)
	s := &gcSoak{lb: harness.NewRoundRobinProxy(t, a, b), ci: a.User(), admin: a.Admin(),
		live: map[string]gcImage{}, deleted: map[string]bool{}}
	for _, size := range []int{512 << 10, 128 << 10, 64 << 10} {
		s.shared = append(s.shared, static.NewLayer(randomBytes(t, size), types.OCILayer))
	}

	// docker too: a few images built up front, pushed, their tags deleted
	// and pushed again through the load balancer during the collections.
	tools := harness.NewTools(t)
	tools.RequireDocker()
	lbHost := strings.TrimPrefix(s.lb.URL(), "http://")
	tools.DockerLogin(lbHost, a.User())
	var dockerRefs []string
	for i := range 3 {
		ref := s.lb.Ref(fmt.Sprintf("staging/gc-docker:d%d", i))
		buildScratchImage(t, tools, ref, imageFile{"/base.bin", 64 << 10}, imageFile{"/own.bin", int64(16<<10 + i)})
		dockerRefs = append(dockerRefs, ref)
	}

	deadline := time.Now().Add(dur)
	var runs, runFailures atomic.Int64
	var gcDone sync.WaitGroup
	gcDone.Go(func() {
		for time.Now().Before(deadline) {
			out, err := runGC(t, a)
			runs.Add(1)
			if err != nil {
				runFailures.Add(1)
				s.fail("slipway gc during the soak: %v\n%s", err, out)
			}
		}
	})
	var wg sync.WaitGroup
	for i := range gcClients {
		wg.Go(func() { s.client(i, deadline) })
	}
	wg.Go(func() { s.dockerClient(tools, dockerRefs, deadline) })
	wg.Wait()
	gcDone.Wait()

	// A last collection with nothing running beside it.
	if out, err := runGC(t, a); err != nil {
		t.Fatalf("the final slipway gc: %v\n%s", err, out)
	}
	ctx := context.Background()
	st := a.Store(t)
	reports, err := gc.ListReports(ctx, st, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var freed, rescued int64
	for _, r := range reports {
		freed += r.Freed.Objects
		rescued += r.Rescued
		if r.Error != "" {
			t.Errorf("gc run %s reported an error: %s", r.Run, r.Error)
		}
	}
	t.Logf("gc soak: %s, %d clients; %d pushes, %d pushes of deleted images, %d tag deletes, %d promotions, %d push retries; %d collections (%d failed, %d reports), %d objects freed, %d rescued",
		dur, gcClients, s.pushes.Load(), s.repushes.Load(), s.deletes.Load(), s.promotions.Load(), s.retries.Load(), runs.Load(), runFailures.Load(), len(reports), freed, rescued)
	reportSome(t, "during the soak", s.problems)
	if freed == 0 {
		t.Errorf("the collector freed nothing in %d runs: the test did not exercise it", len(reports))
	}
	if s.dockerPushes.Load() == 0 {
		t.Errorf("docker pushed nothing during the soak")
	}
	if s.deletes.Load() == 0 || s.repushes.Load() == 0 {
		t.Errorf("the soak deleted %d tags and pushed %d deleted images again: too little to mean anything", s.deletes.Load(), s.repushes.Load())
	}

	s.verifyTags(t, a, b)
	verifyLedgerDigests(t, a)
	verifyStore(t, a)
	checkNoGarbage(t, st)
}

func (s *gcSoak) fail(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *gcSoak) opts(ctx context.Context, c harness.Credentials) []remote.Option {
	return []remote.Option{remote.WithContext(ctx),
		remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password}),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false })}
}

// client runs operations until the deadline: new pushes, pushes of images
// whose tags it deleted before, tag deletes, promotions of its own tags.
func (s *gcSoak) client(i int, deadline time.Time) {
	rng := mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
	var mine, gone []gcImage
	for n := 0; time.Now().Before(deadline); n++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		switch x := rng.IntN(100); {
		case x < 40 || len(mine) == 0:
			img := s.newImage(rng, fmt.Sprintf("staging/gc-%d", rng.IntN(4)), fmt.Sprintf("c%02d-%d", i, n))
			if s.push(ctx, img) {
				mine = append(mine, img)
				s.pushes.Add(1)
			}
		case x < 60 && len(gone) > 0:
			k := rng.IntN(len(gone))
			img := gone[k]
			if s.push(ctx, img) {
				gone = append(gone[:k], gone[k+1:]...)
				mine = append(mine, img)
				s.repushes.Add(1)
			}
		case x < 85:
			k := rng.IntN(len(mine))
			img := mine[k]
			if s.deleteTag(ctx, img) {
				mine = append(mine[:k], mine[k+1:]...)
				gone = append(gone, img)
				s.deletes.Add(1)
			}
		default:
			s.promote(ctx, mine[rng.IntN(len(mine))], i)
		}
		cancel()
	}
}

// newImage: one or two shared layers (pushes race on the same blobs, and
// the blobs outlive most tags) and a unique one.
func (s *gcSoak) newImage(rng *mrand.Rand, repo, tag string) gcImage {
	uniq := make([]byte, 2<<10+rng.IntN(14<<10))
	_, _ = rand.Read(uniq)
	layers := []v1.Layer{s.shared[rng.IntN(len(s.shared))], static.NewLayer(uniq, types.OCILayer)}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layers...)
	if err != nil {
		panic(err)
	}
	d, err := img.Digest()
	if err != nil {
		panic(err)
	}
	return gcImage{repo: repo, tag: tag, img: img, digest: d}
}

// push writes img under its tag, retrying what the collector may make
// fail: a 404 (a blob or manifest it relied on was being deleted). Any
// other failure, or too many retries, is a problem.
func (s *gcSoak) push(ctx context.Context, img gcImage) bool {
	ref, err := name.ParseReference(s.lb.Ref(img.repo+":"+img.tag), name.Insecure)
	if err != nil {
		panic(err)
	}
	for try := 1; ; try++ {
		err = remote.Write(ref, img.img, s.opts(ctx, s.ci)...)
		if err == nil {
			break
		}
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound || try == gcPushTries {
			s.fail("push %s (try %d): %v", ref, try, err)
			return false
		}
		s.retries.Add(1)
	}
	s.mu.Lock()
	s.live[img.repo+":"+img.tag] = img
	delete(s.deleted, img.repo+":"+img.tag)
	s.mu.Unlock()
	return true
}

// deleteTag removes one tag through /v2/ (DELETE …/manifests/<tag>).
func (s *gcSoak) deleteTag(ctx context.Context, img gcImage) bool {
	ref, err := name.ParseReference(s.lb.Ref(img.repo+":"+img.tag), name.Insecure)
	if err != nil {
		panic(err)
	}
	if err := remote.Delete(ref, s.opts(ctx, s.ci)...); err != nil {
		s.fail("delete tag %s: %v", ref, err)
		return false
	}
	s.mu.Lock()
	delete(s.live, img.repo+":"+img.tag)
	s.deleted[img.repo+":"+img.tag] = true
	s.mu.Unlock()
	return true
}

// promote promotes one of the client's live tags to production, to its own
// tag there (so the ledger of each production tag grows: older targets
// stay roots). A promotion racing a deletion may fail; it is retried.
func (s *gcSoak) promote(ctx context.Context, img gcImage, client int) {
	c := &promote.Client{BaseURL: s.lb.URL(), User: s.admin.Username, Password: s.admin.Password,
		HTTP: &http.Client{Timeout: time.Minute}}
	req := promote.Request{Source: img.repo + ":" + img.tag, To: "production", Tag: fmt.Sprintf("c%02d", client), Reason: "gc soak"}
	var err error
	for range gcPushTries {
		var rec promote.Record
		if rec, _, err = c.Promote(ctx, req); err == nil {
			if rec.Digest.String() != img.digest.String() {
				s.fail("promoting %s recorded %s, want %s", req.Source, rec.Digest, img.digest)
			}
			s.promotions.Add(1)
			return
		}
		s.retries.Add(1)
	}
	s.fail("promote %s: %v", req.Source, err)
}

// verifyTags: every live tag pulls whole with its digest from both
// replicas; every deleted tag is gone.
func (s *gcSoak) verifyTags(t *testing.T, regs ...*harness.Registry) {
	t.Helper()
	auth := remote.WithAuth(&authn.Basic{Username: s.admin.Username, Password: s.admin.Password})
	var problems []string
	var verified sync.Map
	for key, img := range s.live {
		for _, reg := range regs {
			ref, err := name.ParseReference(reg.Ref(key), name.Insecure)
			if err == nil {
				_, err = pullWhole(ref, img.digest, &verified, []remote.Option{auth})
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s on %s: %v", key, reg.Host, err))
			}
		}
	}
	for key := range s.deleted {
		ref, _ := name.ParseReference(regs[0].Ref(key), name.Insecure)
		_, err := remote.Head(ref, auth)
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
			problems = append(problems, fmt.Sprintf("deleted tag %s: HEAD gave %v, want 404", key, err))
		}
	}
	reportSome(t, "after the gc soak", problems)
	t.Logf("verified %d live tags on %d replicas, %d deleted tags gone", len(s.live), len(regs), len(s.deleted))
}

// verifyLedgerDigests pulls, by digest, every manifest a ledger record
// names in its target repository: rollback targets stay pullable.
func verifyLedgerDigests(t *testing.T, reg *harness.Registry) {
	t.Helper()
	ctx := context.Background()
	st := reg.Store(t)
	auth := remote.WithAuth(&authn.Basic{Username: reg.Admin().Username, Password: reg.Admin().Password})
	n := 0
	for _, key := range listAll(t, st, "ledger/chains/") {
		rc, _, err := st.Get(ctx, key, storage.GetOptions{})
		if err != nil {
			t.Fatalf("reading %s: %v", key, err)
		}
		var rec promote.Record
		err = json.NewDecoder(rc).Decode(&rec)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		ref, err := name.ParseReference(reg.Ref(rec.Repository+"@"+rec.Digest.String()), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := v1.NewHash(rec.Digest.String())
		if _, err := pullWhole(ref, want, nil, []remote.Option{auth}); err != nil {
			t.Errorf("ledger record %s names %s, which does not pull: %v", key, ref, err)
		}
		n++
	}
	if n == 0 {
		t.Errorf("no ledger record: the promotions did not happen")
	}
	t.Logf("every digest of %d ledger records pulls", n)
}

// runGC runs one `slipway gc` against reg's storage (its configuration
// file) and returns its output.
func runGC(t testing.TB, reg *harness.Registry, args ...string) (string, error) {
	cmd := exec.Command(harness.SlipwayBinary(t), append([]string{"gc", "--config", reg.ConfigPath()}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func listAll(t *testing.T, st storage.Store, prefix string) []string {
	t.Helper()
	var keys []string
	after := ""
	for {
		page, err := st.List(context.Background(), storage.ListOptions{Prefix: prefix, StartAfter: after})
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
			after = o.Key
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return keys
		}
	}
}

// uploadIDName: the implicit first segment of an upload session is named by
// the session's 64-hex id; the collector leaves it until the id expired.
var uploadIDName = regexp.MustCompile(`^data/[0-9a-f]{2}/[0-9a-f]{64}$`)

// checkNoGarbage: after a collection with grace 0 and nothing else running,
// every blob descriptor and manifest record is linked by some repository,
// and every data object is named by a descriptor, or belongs to an upload
// session younger than uploads.purge_after (listed by uploads/<id>, or the
// session's implicit first segment).
func checkNoGarbage(t *testing.T, st storage.Store) {
	t.Helper()
	ctx := context.Background()
	read := func(key string) []byte {
		rc, _, err := st.Get(ctx, key, storage.GetOptions{})
		if err != nil {
			t.Fatalf("reading %s: %v", key, err)
		}
		defer rc.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(rc); err != nil {
			t.Fatalf("reading %s: %v", key, err)
		}
		return b.Bytes()
	}
	linkedBlobs, linkedManifests := map[string]bool{}, map[string]bool{}
	for _, key := range listAll(t, st, "repositories/") {
		// repositories/<name>/_blobs/<alg>/<hex>, …/_manifests/<alg>/<hex>
		for kind, set := range map[string]map[string]bool{"/_blobs/": linkedBlobs, "/_manifests/": linkedManifests} {
			if i := strings.LastIndex(key, kind); i >= 0 {
				set[key[i+len(kind):]] = true // <alg>/<hex>
			}
		}
	}
	named := map[string]bool{}
	var problems []string
	for _, key := range listAll(t, st, "blobs/") {
		// blobs/<alg>/<hh>/<hex>
		parts := strings.Split(key, "/")
		if len(parts) != 4 || !linkedBlobs[parts[1]+"/"+parts[3]] {
			problems = append(problems, "blob descriptor no repository links: "+key)
		}
		var d struct {
			Data     string `json:"data"`
			Segments []struct {
				Key string `json:"key"`
			} `json:"segments"`
		}
		if err := json.Unmarshal(read(key), &d); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		named[d.Data] = true
		for _, s := range d.Segments {
			named[s.Key] = true
		}
	}
	for _, key := range listAll(t, st, "manifests/") {
		parts := strings.Split(key, "/")
		if len(parts) != 4 || !linkedManifests[parts[1]+"/"+parts[3]] {
			problems = append(problems, "manifest record no repository links: "+key)
		}
	}
	for _, key := range listAll(t, st, "uploads/") {
		var rec struct {
			Segments []struct {
				Key string `json:"key"`
			} `json:"segments"`
		}
		if json.Unmarshal(read(key), &rec) == nil {
			for _, s := range rec.Segments {
				named[s.Key] = true
			}
		}
	}
	data := listAll(t, st, "data/")
	for _, key := range data {
		if !named[key] && !uploadIDName.MatchString(key) {
			problems = append(problems, "data object nothing names: "+key)
		}
	}
	reportSome(t, "garbage left after a full collection", problems)
	t.Logf("no garbage: %d descriptors and manifest records all linked, %d data objects all named", len(named), len(data))
}

// TestGCKilled kills `slipway gc` with SIGKILL at moments spread over a
// run (every storage write delayed, so a run lasts long enough to be cut
// in its mark, fence, tombstone and delete phases): after each kill every
// kept tag pulls whole and registry.Verify is clean; a last, uncut run
// then frees everything the deleted tags held.
func TestGCKilled(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{}, ExtraConfig: "gc:\n  grace: 0s\n"})
	auth := as(reg.User())
	base := static.NewLayer(randomBytes(t, 256<<10), types.OCILayer)
	type kept struct {
		ref    string
		digest v1.Hash
	}
	var keep []kept
	var dropped []kept
	for i := range 24 {
		uniq := static.NewLayer(randomBytes(t, 8<<10+i), types.OCILayer)
		img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), base, uniq)
		if err != nil {
			t.Fatal(err)
		}
		ref := reg.Ref(fmt.Sprintf("it/gc-kill-%d:v%d", i%6, i))
		if err := remote.Write(parseRef(t, ref), img, auth); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		if i%2 == 0 {
			keep = append(keep, kept{ref, mustDigest(t, img)})
			continue
		}
		if err := remote.Delete(parseRef(t, ref), auth); err != nil {
			t.Fatalf("delete tag %s: %v", ref, err)
		}
		dropped = append(dropped, kept{ref, mustDigest(t, img)})
	}
	checkKept := func(when string) {
		t.Helper()
		for _, k := range keep {
			if _, err := pullWhole(parseRef(t, k.ref), k.digest, nil, []remote.Option{auth}); err != nil {
				t.Errorf("%s: %s does not pull whole: %v", when, k.ref, err)
			}
		}
		verifyStore(t, reg)
	}

	// Writes of the collector (tombstones, deletes, reports) take 200ms
	// each from now on: the registry keeps serving at full speed (the
	// delay is read at its start), `slipway gc` reads it from the
	// configuration. A run writes its sweep entry, waits the 5 s fence
	// (tombstone.Fence), then marks, looks again, commits or releases,
	// deletes and reports, each step at least one such write. The killed
	// runs keep their candidates until they are judged dead, so later runs
	// have little to free and end soon after the fence: the kills are
	// spread over the fence and the second after it, where every run still
	// is, whatever the machine's speed.
	reg.SetWriteDelay(200 * time.Millisecond)
	killed := 0
	var lastKill time.Time
	for _, at := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second, 5100 * time.Millisecond,
		5300 * time.Millisecond, 5500 * time.Millisecond, 5700 * time.Millisecond, 5900 * time.Millisecond, 6200 * time.Millisecond, 7 * time.Second} {
		cmd := exec.Command(harness.SlipwayBinary(t), "gc", "--config", reg.ConfigPath())
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Logf("slipway gc finished before the kill at %s (%v): %s", at, err, lastLine(out.String()))
		case <-time.After(at):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			killed++
			lastKill = time.Now()
		}
		checkKept(fmt.Sprintf("after killing slipway gc at %s", at))
	}
	if killed < 6 {
		t.Errorf("only %d of the runs were killed before they finished: the kills did not land inside runs", killed)
	}
	// The killed runs' sweep entries hold their objects until they are
	// judged dead: 2 min without a heartbeat, by the store's clock (the
	// collector's deadSweep). A run before that frees what it can and
	// leaves theirs; the last one, after, must finish all of it.
	reg.SetWriteDelay(0)
	if out, err := runGC(t, reg); err != nil {
		t.Fatalf("slipway gc while the killed runs still look alive: %v\n%s", err, out)
	}
	checkKept("after a run while the killed runs still look alive")
	time.Sleep(time.Until(lastKill.Add(2*time.Minute + 10*time.Second)))
	if out, err := runGC(t, reg); err != nil {
		t.Fatalf("the last slipway gc: %v\n%s", err, out)
	}
	checkKept("after the last, uncut run")
	checkNoGarbage(t, reg.Store(t))
	st := reg.Store(t)
	for _, d := range dropped {
		if _, err := remote.Head(parseRef(t, d.ref), auth); err == nil {
			t.Errorf("deleted tag %s still resolves", d.ref)
		}
		key := "manifests/sha256/" + d.digest.Hex[:2] + "/" + d.digest.Hex
		if _, err := st.Stat(context.Background(), key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the manifest of deleted tag %s (%s) was not freed: %v", d.ref, key, err)
		}
	}
	t.Logf("killed %d collections; kept %d tags whole; %d deleted tags' images freed", killed, len(keep), len(dropped))
}
