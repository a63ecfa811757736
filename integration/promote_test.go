package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
)

// client is the promotion API client as credentials c.
func client(reg *harness.Registry, c harness.Credentials) *promote.Client {
	return &promote.Client{BaseURL: reg.URL(), User: c.Username, Password: c.Password}
}

// cli runs `slipway <args>` against reg as c; it returns the output and
// the exit error.
func cli(t *testing.T, tools *harness.Tools, reg *harness.Registry, c harness.Credentials, args ...string) (string, error) {
	t.Helper()
	return tools.Exec(harness.Cmd{
		Args: append([]string{harness.SlipwayBinary(t)}, args...),
		Env:  []string{"SLIPWAY_URL=" + reg.URL(), "SLIPWAY_USER=" + c.Username, "SLIPWAY_PASSWORD=" + c.Password},
	})
}

// storedBytes sums the sizes of the objects under prefix.
func storedBytes(t *testing.T, reg *harness.Registry, prefix string) (n int, bytes int64) {
	t.Helper()
	for _, o := range listStore(t, reg, prefix) {
		n++
		bytes += o.Size
	}
	return n, bytes
}

// TestPromoteDocker: docker pushes staging/app:1.0, `slipway promote`
// makes production/app:1.0, docker pulls it back with the same repo digest
// and image ID. The promotion writes no blob data: the data objects are
// the same before and after, and everything it writes is small.
func TestPromoteDocker(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3RedirectBackend}, testPromoteDocker)
}

func testPromoteDocker(t *testing.T, b backend) {
	reg := b.start(t)
	tools := harness.NewTools(t)
	tools.RequireDocker()
	tools.DockerLogin(reg.Host, reg.Admin())

	src, dst := reg.Ref("staging/app:1.0"), reg.Ref("production/app:1.0")
	t.Cleanup(func() {
		_, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", src, dst}})
	})
	imageID := buildScratchImage(t, tools, src, imageFile{"/a.bin", 3 << 20}, imageFile{"/b.bin", 64 << 10})
	pushed := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`), tools.Run("docker", "push", src), "pushed digest")

	dataObjects, dataBytes := storedBytes(t, reg, "data/")
	before := map[string]int64{}
	for _, o := range listStore(t, reg, "") {
		before[o.Key] = o.Size
	}

	out, err := cli(t, tools, reg, reg.Admin(), "promote", "staging/app:1.0", "--to", "production", "--reason", "integration test")
	if err != nil {
		t.Fatalf("slipway promote: %v\n%s", err, out)
	}
	if !strings.Contains(out, "promoted: staging/app:1.0 -> production/app:1.0") || !strings.Contains(out, pushed) {
		t.Fatalf("slipway promote printed:\n%s", out)
	}

	// No blob data moved: the same data objects, and only small new ones.
	if n, bytes := storedBytes(t, reg, "data/"); n != dataObjects || bytes != dataBytes {
		t.Fatalf("data objects %d (%d bytes) before the promotion, %d (%d bytes) after", dataObjects, dataBytes, n, bytes)
	}
	var written int64
	for _, o := range listStore(t, reg, "") {
		if size, ok := before[o.Key]; !ok || size != o.Size {
			written += o.Size
			if o.Size > 8<<10 {
				t.Errorf("the promotion wrote %s (%d bytes): more than a link or a manifest", o.Key, o.Size)
			}
		}
	}
	t.Logf("promotion of a %d-byte image wrote %d bytes of metadata", dataBytes, written)

	tools.Run("docker", "image", "rm", src)
	pulled := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), tools.Run("docker", "pull", dst), "pulled digest")
	if pulled != pushed {
		t.Fatalf("production digest %s, staging pushed %s", pulled, pushed)
	}
	if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", dst)); got != imageID {
		t.Fatalf("production image ID %s, built %s", got, imageID)
	}
	hist, err := cli(t, tools, reg, reg.Admin(), "history", "app")
	if err != nil || !strings.Contains(hist, "production/app:1.0") || !strings.Contains(hist, "promoted") || !strings.Contains(hist, "admin") {
		t.Fatalf("slipway history app: %v\n%s", err, hist)
	}
	verifyStore(t, reg)
}

// TestPromoteIndexAndReferrers: a two-platform index with an SBOM referrer
// (subject) and a cosign-style signature tag promotes complete.
func TestPromoteIndexAndReferrers(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3Backend}, func(t *testing.T, b backend) {
		reg := b.start(t)
		auth := as(reg.Admin())
		var adds []mutate.IndexAddendum
		for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
			adds = append(adds, mutate.IndexAddendum{Add: ociImage(t, 2, 64<<10, p), Descriptor: v1.Descriptor{Platform: &p}})
		}
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
		if err := remote.WriteIndex(parseRef(t, reg.Ref("staging/multi:2.0")), idx, auth); err != nil {
			t.Fatal(err)
		}
		idxDigest := mustDigest(t, idx)
		desc, err := remote.Head(parseRef(t, reg.Ref("staging/multi:2.0")), auth)
		if err != nil {
			t.Fatal(err)
		}
		sbom := mutate.Subject(mutate.ConfigMediaType(ociImage(t, 1, 1024, v1.Platform{}), "application/spdx+json"), *desc).(v1.Image)
		if err := remote.Write(parseRef(t, reg.Ref("staging/multi@"+mustDigest(t, sbom).String())), sbom, auth); err != nil {
			t.Fatal(err)
		}
		sig := ociImage(t, 1, 512, v1.Platform{})
		sigTag := "sha256-" + idxDigest.Hex + ".sig"
		if err := remote.Write(parseRef(t, reg.Ref("staging/multi:"+sigTag)), sig, auth); err != nil {
			t.Fatal(err)
		}

		rec, created, err := client(reg, reg.Admin()).Promote(context.Background(), promote.Request{Source: "staging/multi:2.0", To: "production"})
		if err != nil || !created || rec.Digest.String() != idxDigest.String() {
			t.Fatalf("promote index = %+v %v %v", rec, created, err)
		}
		got, err := remote.Index(parseRef(t, reg.Ref("production/multi:2.0")), auth)
		if err != nil {
			t.Fatal(err)
		}
		if mustDigest(t, got) != idxDigest {
			t.Fatalf("production index digest %s, want %s", mustDigest(t, got), idxDigest)
		}
		im, _ := got.IndexManifest()
		for _, m := range im.Manifests {
			img, err := remote.Image(parseRef(t, reg.Ref("production/multi@"+m.Digest.String())), auth)
			if err != nil {
				t.Fatalf("child %s: %v", m.Digest, err)
			}
			layers, _ := img.Layers()
			for _, l := range layers {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatalf("layer of %s: %v", m.Digest, err)
				}
				_, _ = io.Copy(io.Discard, rc)
				rc.Close()
			}
		}
		refs, err := remote.Referrers(parseRef(t, reg.Ref("production/multi@"+idxDigest.String())).Context().Digest(idxDigest.String()), auth)
		if err != nil {
			t.Fatal(err)
		}
		rm, _ := refs.IndexManifest()
		if len(rm.Manifests) != 1 || rm.Manifests[0].Digest != mustDigest(t, sbom) {
			t.Fatalf("production referrers = %+v", rm.Manifests)
		}
		if _, err := remote.Image(parseRef(t, reg.Ref("production/multi@"+mustDigest(t, sbom).String())), auth); err != nil {
			t.Fatalf("the SBOM is not pullable from production: %v", err)
		}
		sd, err := remote.Head(parseRef(t, reg.Ref("production/multi:"+sigTag)), auth)
		if err != nil || sd.Digest != mustDigest(t, sig) {
			t.Fatalf("signature tag in production: %v %v", sd, err)
		}
		verifyStore(t, reg)
	})
}

// TestConcurrentPromotionsTwoReplicas: 20 promotions of different digests
// to production/app:stable at once, half through each of two Slipway
// processes on one bucket: every request is answered 201, the ledger has
// 20 records whose previous digests chain, and the tag is the newest.
func TestConcurrentPromotionsTwoReplicas(t *testing.T) {
	reg := s3Backend.start(t)
	replica := reg.StartReplica(t)
	auth := as(reg.Admin())
	const n = 20
	for i := range n {
		img := ociImage(t, 1, 1024, v1.Platform{OS: "linux", Architecture: "amd64"})
		if err := remote.Write(parseRef(t, reg.Ref(fmt.Sprintf("staging/app:b%d", i))), img, auth); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := reg
			if i%2 == 1 {
				r = replica
			}
			_, created, err := client(r, r.Admin()).Promote(context.Background(), promote.Request{
				Source: fmt.Sprintf("staging/app:b%d", i), To: "production", Tag: "stable", Reason: fmt.Sprintf("race %d", i),
			})
			if err == nil && !created {
				err = errors.New("answered as a no-op")
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("promotion %d: %v", i, err)
		}
	}
	requireChain(t, reg, "production/app", "stable", n)
	verifyStore(t, reg)
}

// requireChain checks a tag's ledger: n records, seq 1..n, each previous
// digest the digest of the record before, and the tag the newest digest.
func requireChain(t *testing.T, reg *harness.Registry, repo, tag string, n int) []promote.Record {
	t.Helper()
	page, err := client(reg, reg.Admin()).History(context.Background(), promote.Query{Repository: repo, Tag: tag, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	recs := page.Records
	if len(recs) != n {
		t.Fatalf("%s:%s has %d records, want %d", repo, tag, len(recs), n)
	}
	for i, r := range recs { // newest first
		if want := int64(n - i); r.Seq != want {
			t.Fatalf("record %d has seq %d, want %d", i, r.Seq, want)
		}
		if i+1 < len(recs) && r.PreviousDigest != recs[i+1].Digest {
			t.Fatalf("record %d: previous %s, but record %d has %s: the chain is broken", r.Seq, r.PreviousDigest, recs[i+1].Seq, recs[i+1].Digest)
		}
	}
	if recs[n-1].PreviousDigest != "" && recs[n-1].Outcome != promote.OutcomeNoop {
		t.Fatalf("the first record has a previous digest %s", recs[n-1].PreviousDigest)
	}
	desc, err := remote.Head(parseRef(t, reg.Ref(repo+":"+tag)), as(reg.Admin()))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != recs[0].Digest.String() {
		t.Fatalf("%s:%s = %s, the newest record says %s", repo, tag, desc.Digest, recs[0].Digest)
	}
	return recs
}

// TestCrashDuringPromotion kills -9 the server at spread-out moments of a
// promotion (every storage write delayed), restarts it and repeats the
// promotion: the target is unchanged or fully promoted after the kill, and
// complete and consistent after the repeat.
func TestCrashDuringPromotion(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3Backend}, testCrashDuringPromotion)
}

func testCrashDuringPromotion(t *testing.T, b backend) {
	reg := b.start(t)
	auth := as(reg.Admin())
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	interrupted := 0
	for round := range 6 {
		img := ociImage(t, 4, 4<<10, plat)
		src := fmt.Sprintf("staging/crash:r%d", round)
		if err := remote.Write(parseRef(t, reg.Ref(src)), img, auth); err != nil {
			t.Fatal(err)
		}
		want := mustDigest(t, img)
		reg.SetWriteDelay(crashWriteDelay)
		reg.Restart()
		wait := time.Duration(60+round*90) * time.Millisecond
		if killDuring(reg, wait, func() error {
			_, _, err := client(reg, reg.Admin()).Promote(context.Background(), promote.Request{Source: src, To: "production", Tag: "stable"})
			return err
		}) {
			interrupted++
		}
		verifyStore(t, reg)
		reg.SetWriteDelay(0)
		reg.Restart()

		// Unchanged or fully promoted: if the tag names the new digest, the
		// whole image pulls from production.
		if desc, err := remote.Head(parseRef(t, reg.Ref("production/crash:stable")), auth); err == nil && desc.Digest == want {
			requirePulls(t, reg.Ref("production/crash:stable"), img, auth)
		}
		rec, _, err := client(reg, reg.Admin()).Promote(context.Background(), promote.Request{Source: src, To: "production", Tag: "stable"})
		if err != nil {
			t.Fatalf("round %d: repeating the promotion after the kill: %v", round, err)
		}
		if rec.Digest.String() != want.String() {
			t.Fatalf("round %d: promoted %s, want %s", round, rec.Digest, want)
		}
		requirePulls(t, reg.Ref("production/crash:stable"), img, auth)
		t.Logf("round %d: killed after %v; repeat outcome %s (seq %d)", round, wait, rec.Outcome, rec.Seq)
	}
	if interrupted == 0 {
		t.Fatal("no kill landed inside a promotion: the test exercised nothing")
	}
	page, err := client(reg, reg.Admin()).History(context.Background(), promote.Query{Repository: "production/crash", Tag: "stable", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	requireChain(t, reg, "production/crash", "stable", len(page.Records))
	verifyStore(t, reg)
}

// TestPromotionRefusals: each refusal with its status and message, through
// the CLI (exit code 1, the server's message) and the registry.
func TestPromotionRefusals(t *testing.T) {
	reg := fsBackend.start(t)
	tools := harness.NewTools(t)
	auth := as(reg.Admin())
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	first, second := ociImage(t, 1, 1024, plat), ociImage(t, 1, 1024, plat)
	if err := remote.Write(parseRef(t, reg.Ref("staging/app:v1.0")), first, auth); err != nil {
		t.Fatal(err)
	}

	// A direct push to production is denied, to admins too.
	err := remote.Write(parseRef(t, reg.Ref("production/app:v1.0")), first, auth)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("direct push to production = %v, want 403 DENIED (immutable stage)", err)
	}

	if out, err := cli(t, tools, reg, reg.Admin(), "promote", "staging/app:v1.0", "--to", "production"); err != nil {
		t.Fatalf("first promotion: %v\n%s", err, out)
	}
	if err := remote.Write(parseRef(t, reg.Ref("staging/app:v1.0")), second, auth); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		who  harness.Credentials
		args []string
		want string
	}{
		{"unknown tag", reg.Admin(), []string{"promote", "staging/app:9.9", "--to", "production"}, "refused (404 not_found): staging/app:9.9 does not exist"},
		{"fixed tag re-pointed", reg.Admin(), []string{"promote", "staging/app:v1.0", "--to", "production"}, "refused (409 fixed_tag): production/app:v1.0 is a fixed tag in production"},
		{"edge not configured", reg.Admin(), []string{"promote", "production/app:v1.0", "--to", "staging"}, "refused (409 edge_not_allowed): promotion from production to staging is not configured"},
		{"no promote grant", reg.User(), []string{"promote", "staging/app:v1.0", "--to", "production", "--tag", "other"}, "refused (403 forbidden): promote needs pull and promote on staging/app"},
		{"bad password", harness.Credentials{Username: "admin", Password: "wrong"}, []string{"promote", "staging/app:v1.0", "--to", "production"}, "refused (401 unauthorized)"},
		{"malformed", reg.Admin(), []string{"promote", "staging/app", "--to", "production"}, "refused (400 bad_request)"},
	} {
		out, err := cli(t, tools, reg, tc.who, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: err %v, output %q; want a failure saying %q", tc.name, err, strings.TrimSpace(out), tc.want)
		}
	}
	// The fixed tag still names the first build.
	desc, err := remote.Head(parseRef(t, reg.Ref("production/app:v1.0")), auth)
	if err != nil || desc.Digest != mustDigest(t, first) {
		t.Fatalf("production/app:v1.0 = %v %v, want the first build", desc, err)
	}
}

// TestPromotionWebhook: a promotion and a rollback each reach the
// receiver, signed; an event queued while the receiver fails survives a
// kill -9 of the server and is delivered after the restart.
func TestPromotionWebhook(t *testing.T) {
	const secret = "webhook-secret-0123456789"
	type event struct {
		ID, Event string
		Data      promote.Record
	}
	var mu sync.Mutex
	var got []event
	failing := true
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get("X-Slipway-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("bad signature on %s", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var e event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		got = append(got, e)
	}))
	t.Cleanup(recv.Close)
	reg := harness.StartOpts(t, harness.Options{ExtraConfig: fmt.Sprintf(
		"promotion:\n  webhooks:\n    - url: %q\n      secret: %q\n", recv.URL+"/hook", secret)})
	auth := as(reg.Admin())
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	for _, tag := range []string{"a", "b"} {
		if err := remote.Write(parseRef(t, reg.Ref("staging/hooked:"+tag)), ociImage(t, 1, 512, plat), auth); err != nil {
			t.Fatal(err)
		}
	}
	c := client(reg, reg.Admin())
	first, _, err := c.Promote(context.Background(), promote.Request{Source: "staging/hooked:a", To: "production", Tag: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	// The receiver is down: the event waits in the outbox through a kill.
	time.Sleep(300 * time.Millisecond)
	reg.Kill()
	mu.Lock()
	failing = false
	mu.Unlock()
	reg.Restart()
	c = client(reg, reg.Admin())
	second, _, err := c.Promote(context.Background(), promote.Request{Source: "staging/hooked:b", To: "production", Tag: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := c.Rollback(context.Background(), second.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		seen := map[string]string{}
		for _, e := range got {
			seen[e.Data.ID] = e.Event
		}
		mu.Unlock()
		if seen[first.ID] == "promotion" && seen[second.ID] == "promotion" && seen[rb.ID] == "rollback" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook events received: %v; want promotions %s, %s and rollback %s", seen, first.ID, second.ID, rb.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
