package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/registry"
)

// Each storage write waits this long in the crash rounds, so a kill lands
// between the writes of one request rather than between requests.
const crashWriteDelay = 40 * time.Millisecond

// verifyStore opens the server's storage (folder or bucket) and requires
// that nothing a client could see is inconsistent.
func verifyStore(t *testing.T, reg *harness.Registry) {
	t.Helper()
	problems, err := registry.Verify(context.Background(), reg.Store(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("inconsistent store: %s", p)
	}
}

// requireWholeOrAbsent: a tag pushed while the server died either does not
// exist or names a complete, valid image.
func requireWholeOrAbsent(t *testing.T, ref string, auth remote.Option) (visible bool) {
	t.Helper()
	img, err := remote.Image(parseRef(t, ref), auth)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return false
	}
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("%s is visible but not whole: %v", ref, err)
	}
	return true
}

func requirePulls(t *testing.T, ref string, want v1.Image, auth remote.Option) {
	t.Helper()
	img, err := remote.Image(parseRef(t, ref), auth)
	if err != nil {
		t.Fatalf("%s no longer pulls: %v", ref, err)
	}
	if mustDigest(t, img) != mustDigest(t, want) {
		t.Errorf("%s: digest changed", ref)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("%s: %v", ref, err)
	}
}

// TestCrashDuringPush kills -9 the server at spread-out moments of image
// pushes. After each restart: the store verifies clean, every push that
// completed before still pulls, the interrupted tag is absent or whole, and
// pushing it again succeeds. On a folder and on a MinIO bucket.
func TestCrashDuringPush(t *testing.T) {
	eachBackend(t, crashBackends, testCrashDuringPush)
}

// crashBackends: the crash tests kill Slipway, never MinIO (see
// TestS3Outage for that).
var crashBackends = []backend{fsBackend, s3Backend}

func testCrashDuringPush(t *testing.T, b backend) {
	reg := b.start(t)
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	done := map[string]v1.Image{"it/crash:base": ociImage(t, 2, 128<<10, plat)}
	if err := remote.Write(parseRef(t, reg.Ref("it/crash:base")), done["it/crash:base"], as(reg.User())); err != nil {
		t.Fatal(err)
	}

	interrupted := 0
	for round := range 6 {
		tag := fmt.Sprintf("it/crash:r%d", round)
		img := ociImage(t, 3, 256<<10, plat)
		reg.SetWriteDelay(crashWriteDelay)
		reg.Restart()

		if killDuring(reg, time.Duration(100+round*110)*time.Millisecond, func() error {
			return remote.Write(parseRef(t, reg.Ref(tag)), img, as(reg.User()))
		}) {
			interrupted++
		}
		verifyStore(t, reg)

		reg.SetWriteDelay(0)
		reg.Restart()
		for ref, want := range done {
			requirePulls(t, reg.Ref(ref), want, as(reg.User()))
		}
		visible := requireWholeOrAbsent(t, reg.Ref(tag), as(reg.User()))
		t.Logf("round %d: killed after %dms, tag visible after restart: %v", round, 100+round*110, visible)

		if err := remote.Write(parseRef(t, reg.Ref(tag)), img, as(reg.User())); err != nil {
			t.Fatalf("re-pushing %s after the crash: %v", tag, err)
		}
		requirePulls(t, reg.Ref(tag), img, as(reg.User()))
		done[tag] = img
	}
	if interrupted == 0 {
		t.Fatal("no kill landed inside a push: the test exercised nothing")
	}
	reg.Kill()
	verifyStore(t, reg)
}

// TestCrashDuringManifestPut kills the server between the writes of one
// manifest PUT (record, link, tag) and requires the tag to be absent or to
// name the whole manifest after the restart.
func TestCrashDuringManifestPut(t *testing.T) {
	eachBackend(t, crashBackends, testCrashDuringManifestPut)
}

func testCrashDuringManifestPut(t *testing.T, b backend) {
	reg := b.start(t)
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	base := ociImage(t, 1, 64<<10, plat)
	if err := remote.Write(parseRef(t, reg.Ref("it/mcrash:base")), base, as(reg.User())); err != nil {
		t.Fatal(err)
	}
	// The client's token for pushing here, fetched before the rounds so
	// each PUT goes out at once: re-putting base is a no-op.
	client := harness.NewClient(reg.User())
	do(t, client, http.MethodPut, reg.URL()+"/v2/it/mcrash/manifests/base", mustRaw(t, base),
		map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, http.StatusCreated)
	reg.SetWriteDelay(crashWriteDelay)
	interrupted := 0
	for round := range 5 {
		// A new manifest over the same blobs: only the manifest PUT writes.
		img := mutate.Annotations(base, map[string]string{"round": fmt.Sprint(round)}).(v1.Image)
		raw := mustRaw(t, img)
		tag := fmt.Sprintf("m%d", round)
		reg.Restart()

		if killDuring(reg, crashWriteDelay/2+time.Duration(round)*crashWriteDelay, func() error {
			req, _ := http.NewRequest(http.MethodPut, reg.URL()+"/v2/it/mcrash/manifests/"+tag, bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					err = fmt.Errorf("PUT: %s", resp.Status)
				}
			}
			return err
		}) {
			interrupted++
		}
		verifyStore(t, reg)
		reg.Restart()
		requirePulls(t, reg.Ref("it/mcrash:base"), base, as(reg.User()))
		if requireWholeOrAbsent(t, reg.Ref("it/mcrash:"+tag), as(reg.User())) {
			requirePulls(t, reg.Ref("it/mcrash:"+tag), img, as(reg.User()))
		}
	}
	if interrupted == 0 {
		t.Fatal("no kill landed inside a manifest PUT: the test exercised nothing")
	}
}

// TestCrashDuringChunkedUpload kills the server while a chunk streams in;
// after the restart the session still holds exactly the chunks that were
// acknowledged, and the upload finishes with the right digest.
func TestCrashDuringChunkedUpload(t *testing.T) {
	eachBackend(t, crashBackends, testCrashDuringChunkedUpload)
}

func testCrashDuringChunkedUpload(t *testing.T, b backend) {
	reg := b.start(t)
	const chunk = 1 << 20
	blob := make([]byte, 2*chunk)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(blob))
	client := harness.NewClient(reg.User())

	resp := do(t, client, http.MethodPost, reg.URL()+"/v2/it/ucrash/blobs/uploads/", nil, nil, http.StatusAccepted)
	loc := reg.URL() + resp.Header.Get("Location")
	if resp.Header.Get("Location")[0] != '/' {
		loc = resp.Header.Get("Location")
	}
	do(t, client, http.MethodPatch, loc, blob[:chunk], map[string]string{"Content-Range": fmt.Sprintf("0-%d", chunk-1)}, http.StatusAccepted)

	// The second chunk stalls half way; the server dies while reading it.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(blob[chunk : chunk+chunk/2])
		time.Sleep(500 * time.Millisecond)
		pw.CloseWithError(errors.New("client gave up"))
	}()
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, loc, pr)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	reg.Kill()
	<-errc
	verifyStore(t, reg)
	reg.Restart()

	st := do(t, client, http.MethodGet, loc, nil, nil, http.StatusNoContent)
	if got, want := st.Header.Get("Range"), fmt.Sprintf("0-%d", chunk-1); got != want {
		t.Fatalf("upload status after restart: Range %q, want %q", got, want)
	}
	do(t, client, http.MethodPatch, loc, blob[chunk:], map[string]string{"Content-Range": fmt.Sprintf("%d-%d", chunk, 2*chunk-1)}, http.StatusAccepted)
	do(t, client, http.MethodPut, loc+"?digest="+dgst, nil, nil, http.StatusCreated)
	got := do(t, client, http.MethodGet, reg.URL()+"/v2/it/ucrash/blobs/"+dgst, nil, nil, http.StatusOK)
	if !bytes.Equal(got.body, blob) {
		t.Fatal("blob read back differs from what was uploaded")
	}
}

type response struct {
	*http.Response
	body []byte
}

// do sends one request with client and requires a status.
func do(t *testing.T, client *http.Client, method, url string, body []byte, hdr map[string]string, want int) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d: %s", method, url, resp.Status, want, b)
	}
	return response{resp, b}
}

// killDuring runs op, kills the registry (kill -9) after wait, and tells
// whether op failed, i.e. the kill cut it short.
func killDuring(reg *harness.Registry, wait time.Duration, op func() error) bool {
	errc := make(chan error, 1)
	go func() { errc <- op() }()
	time.Sleep(wait)
	reg.Kill()
	return <-errc != nil
}
