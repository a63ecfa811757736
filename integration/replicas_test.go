package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/storage"
)

// TestReplicas runs two Slipway processes, A and B, on one storage (a MinIO
// bucket; also a shared folder) as two replicas behind a load balancer
// would be, with nothing shared but the store:
//
//   - a chunked upload started on A (POST + PATCH) is finished on B
//     (PATCH + PUT) and yields the right digest, read back through both;
//   - an image pushed through A pulls through B (crane);
//   - the same blob pushed at the same time through A and B (monolithic
//     POST ?digest=, and POST/PATCH/PUT) is stored once: both get 201, and
//     the store holds exactly one descriptor under blobs/sha256/<hh>/<hex>
//     and exactly one data/ object with that blob's bytes (the loser's data
//     object is deleted).
func TestReplicas(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3Backend}, testReplicas)
}

func testReplicas(t *testing.T, b backend) {
	a := b.start(t)
	bb := a.StartReplica(t)
	// One client for both replicas: a token from A is good on B (they share
	// the signing key).
	client := harness.NewClient(a.User())

	t.Run("token-across", func(t *testing.T) {
		if harness.IsStock() {
			t.Fatal("this subtest checks Slipway's tokens: run it against Slipway")
		}
		// Both replicas sign with the same auth.signing_key: a token one
		// issues is good on the other, and they publish the same key set.
		for _, pair := range [][2]*harness.Registry{{a, bb}, {bb, a}} {
			tok := pair[0].Token(t, a.User(), "repository:it/replicas-token:pull")
			if st, ch := v2Get(t, pair[1].URL()+"/v2/it/replicas-token/tags/list", tok); st != http.StatusNotFound {
				t.Errorf("token from %s on %s: %d %+v, want 404 (accepted; no such repository)", pair[0].Host, pair[1].Host, st, ch)
			}
		}
		if ka, kb := jwks(t, a), jwks(t, bb); len(ka) != 1 || len(kb) != 1 || !keysEqual(ka, kb) {
			t.Errorf("the replicas publish different key sets: %d and %d keys", len(ka), len(kb))
		}
	})

	t.Run("upload-across", func(t *testing.T) {
		const chunk = 1 << 20
		blob := randomBytes(t, 2*chunk+777)
		dgst := digest.FromBytes(blob)
		repo := "it/replicas-upload"

		resp := do(t, client, http.MethodPost, a.URL()+"/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
		loc := onReplica(t, a, resp.Header.Get("Location"))
		resp = do(t, client, http.MethodPatch, loc, blob[:chunk], map[string]string{"Content-Range": fmt.Sprintf("0-%d", chunk-1)}, http.StatusAccepted)
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", chunk-1); got != want {
			t.Errorf("PATCH on A: Range %q, want %q", got, want)
		}

		// B sees the session A wrote, and takes it over.
		locB := onReplica(t, bb, resp.Header.Get("Location"))
		st := do(t, client, http.MethodGet, locB, nil, nil, http.StatusNoContent)
		if got, want := st.Header.Get("Range"), fmt.Sprintf("0-%d", chunk-1); got != want {
			t.Errorf("upload status on B: Range %q, want %q", got, want)
		}
		resp = do(t, client, http.MethodPatch, locB, blob[chunk:], map[string]string{"Content-Range": fmt.Sprintf("%d-%d", chunk, len(blob)-1)}, http.StatusAccepted)
		locB = onReplica(t, bb, resp.Header.Get("Location"))
		put := do(t, client, http.MethodPut, withDigest(t, locB, dgst), nil, nil, http.StatusCreated)
		if got := put.Header.Get("Docker-Content-Digest"); got != dgst.String() {
			t.Errorf("PUT on B: Docker-Content-Digest %q, want %s", got, dgst)
		}
		for _, r := range []*harness.Registry{a, bb} {
			got := do(t, client, http.MethodGet, r.URL()+"/v2/"+repo+"/blobs/"+dgst.String(), nil, nil, http.StatusOK)
			if !bytes.Equal(got.body, blob) {
				t.Errorf("GET through %s: %d bytes, digest %s; want %d bytes, %s", r.Host, len(got.body), digest.FromBytes(got.body), len(blob), dgst)
			}
			if h := got.Header.Get("Docker-Content-Digest"); h != dgst.String() {
				t.Errorf("GET through %s: Docker-Content-Digest %q, want %s", r.Host, h, dgst)
			}
		}
	})

	t.Run("push-A-pull-B", func(t *testing.T) {
		tools := harness.NewTools(t)
		tools.CraneLogin(bb.Host, bb.User())
		img := ociImage(t, 3, 256<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
		want := mustDigest(t, img)
		if err := remote.Write(parseRef(t, a.Ref("it/replicas-image:1")), img, as(a.User())); err != nil {
			t.Fatalf("push through A: %v", err)
		}
		if got := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", bb.Ref("it/replicas-image:1"))); got != want.String() {
			t.Errorf("crane digest through B: %s, pushed %s", got, want)
		}
		if got := tools.Run("crane", "manifest", "--insecure", bb.Ref("it/replicas-image:1")); got != string(mustRaw(t, img)) {
			t.Errorf("manifest through B differs:\n got: %s\nwant: %s", got, mustRaw(t, img))
		}
		tools.Run("crane", "validate", "--insecure", "--remote", bb.Ref("it/replicas-image:1"))
		tools.Run("crane", "pull", "--insecure", "--format", "oci", bb.Ref("it/replicas-image:1"), "pulled")
		if tags := tools.Run("crane", "ls", "--insecure", bb.Ref("it/replicas-image")); strings.TrimSpace(tags) != "1" {
			t.Errorf("crane ls through B: %q, want the one tag 1", tags)
		}
	})

	t.Run("same-blob-at-once", func(t *testing.T) {
		if harness.IsStock() {
			t.Fatal("this subtest inspects Slipway's storage layout: run it against Slipway")
		}
		// A store of its own, so every data object in it is one of these blobs.
		a := b.start(t)
		bb := a.StartReplica(t)
		client := harness.NewClient(a.User())
		const rounds = 4
		var blobs []digest.Digest
		for round := range rounds {
			for _, mode := range []string{"monolithic", "chunked"} {
				blob := randomBytes(t, 3<<20+round)
				dgst := digest.FromBytes(blob)
				blobs = append(blobs, dgst)
				repo := fmt.Sprintf("it/replicas-race-%s", mode)
				statuses := raceUpload(t, client, []*harness.Registry{a, bb}, repo, blob, mode)
				for i, st := range statuses {
					if st != http.StatusCreated {
						t.Errorf("round %d %s: replica %d answered %d, want 201", round, mode, i, st)
					}
				}
				for _, r := range []*harness.Registry{a, bb} {
					got := do(t, client, http.MethodGet, r.URL()+"/v2/"+repo+"/blobs/"+dgst.String(), nil, nil, http.StatusOK)
					if !bytes.Equal(got.body, blob) {
						t.Errorf("round %d %s: GET through %s returns other bytes", round, mode, r.Host)
					}
				}
			}
		}
		checkStoredOnce(t, a, blobs)
	})
}

// randomBytes is n bytes of random data.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// onReplica turns a Location (absolute, naming the replica that answered,
// or a path) into the same path and query on r.
func onReplica(t *testing.T, r *harness.Registry, loc string) string {
	t.Helper()
	if loc == "" {
		t.Fatal("no Location header")
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return r.URL() + u.RequestURI()
}

// withDigest adds digest=d to an upload URL's query.
func withDigest(t *testing.T, loc string, d digest.Digest) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return u.String()
}

// raceUpload uploads the same blob through every replica at once and
// returns the final statuses. The bodies stream half their bytes, wait for
// each other, then finish together, so the commits (descriptor writes)
// race. mode "monolithic": POST ?digest= with the body (Content-Length
// set). mode "chunked": POST, then one PATCH with the body (chunked
// transfer encoding, size unknown), then PUT ?digest= on every replica at
// the same moment.
//
// client must log in (see harness.AuthTransport): it fetches its token
// before a body starts, so the bodies still start together.
func raceUpload(t *testing.T, client *http.Client, regs []*harness.Registry, repo string, blob []byte, mode string) []int {
	t.Helper()
	dgst := digest.FromBytes(blob)
	half := len(blob) / 2
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(len(regs))
	body := func() io.Reader {
		pr, pw := io.Pipe()
		go func() {
			_, err := pw.Write(blob[:half])
			started.Done()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			<-release
			_, err = pw.Write(blob[half:])
			pw.CloseWithError(err)
		}()
		return pr
	}
	client = &http.Client{Transport: client.Transport, Timeout: 2 * time.Minute}
	send := func(method, u string, r io.Reader, size int64) (int, http.Header, string, error) {
		req, err := http.NewRequest(method, u, r)
		if err != nil {
			return 0, nil, "", err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.ContentLength = size
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b), nil
	}

	statuses := make([]int, len(regs))
	var wg sync.WaitGroup
	switch mode {
	case "monolithic":
		for i, r := range regs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, _, msg, err := send(http.MethodPost, r.URL()+"/v2/"+repo+"/blobs/uploads/?digest="+dgst.String(), body(), int64(len(blob)))
				if err != nil || st != http.StatusCreated {
					t.Errorf("monolithic POST through %s: %d %v %s", r.Host, st, err, msg)
				}
				statuses[i] = st
			}()
		}
		started.Wait()
		time.Sleep(100 * time.Millisecond) // both bodies are in the servers
		close(release)
		wg.Wait()
	case "chunked":
		locs := make([]string, len(regs))
		for i, r := range regs {
			resp := do(t, client, http.MethodPost, r.URL()+"/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
			locs[i] = onReplica(t, r, resp.Header.Get("Location"))
		}
		for i, r := range regs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, h, msg, err := send(http.MethodPatch, locs[i], body(), -1)
				if err != nil || st != http.StatusAccepted {
					t.Errorf("PATCH through %s: %d %v %s", r.Host, st, err, msg)
					return
				}
				locs[i] = onReplica(t, r, h.Get("Location"))
			}()
		}
		started.Wait()
		time.Sleep(100 * time.Millisecond)
		close(release)
		wg.Wait()
		go1 := make(chan struct{})
		for i, r := range regs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-go1
				st, _, msg, err := send(http.MethodPut, withDigest(t, locs[i], dgst), nil, 0)
				if err != nil || st != http.StatusCreated {
					t.Errorf("PUT ?digest= through %s: %d %v %s", r.Host, st, err, msg)
				}
				statuses[i] = st
			}()
		}
		close(go1)
		wg.Wait()
	default:
		t.Fatalf("raceUpload: mode %q", mode)
	}
	return statuses
}

// storedObject is one object of the registry's store, listed directly.
type storedObject struct {
	Key  string
	Size int64
}

// listStore lists every object under prefix in the registry's storage:
// the bucket through minio-go (keys relative to storage.s3.root), or the
// folder through storage/fs.
func listStore(t *testing.T, reg *harness.Registry, prefix string) []storedObject {
	t.Helper()
	var out []storedObject
	if s := reg.S3; s != nil {
		root := ""
		if s.Root != "" {
			root = strings.Trim(s.Root, "/") + "/"
		}
		for _, o := range s.MinIO.Objects(t, s.Bucket, root+prefix) {
			out = append(out, storedObject{strings.TrimPrefix(o.Key, root), o.Size})
		}
		return out
	}
	st := reg.Store(t)
	after := ""
	for {
		page, err := st.List(context.Background(), storage.ListOptions{Prefix: prefix, StartAfter: after})
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		for _, o := range page.Objects {
			out = append(out, storedObject{o.Key, o.Size})
			after = o.Key
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return out
		}
	}
}

// readStored reads one object of the registry's store.
func readStored(t *testing.T, reg *harness.Registry, key string) []byte {
	t.Helper()
	rc, _, err := reg.Store(t).Get(context.Background(), key, storage.GetOptions{})
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b
}

// checkStoredOnce requires that each blob has exactly one descriptor and
// exactly one data object holding its bytes, that the descriptor points at
// that object, that no other data object exists (every loser's copy was
// deleted), and that no upload session is left behind.
func checkStoredOnce(t *testing.T, reg *harness.Registry, blobs []digest.Digest) {
	t.Helper()
	byHash := map[string][]string{} // sha256 of the bytes -> data keys
	data := listStore(t, reg, "data/")
	for _, o := range data {
		sum := sha256.Sum256(readStored(t, reg, o.Key))
		h := "sha256:" + hex.EncodeToString(sum[:])
		byHash[h] = append(byHash[h], o.Key)
	}
	for _, d := range blobs {
		enc := d.Encoded()
		descKey := "blobs/sha256/" + enc[:2] + "/" + enc
		descs := listStore(t, reg, "blobs/sha256/"+enc[:2]+"/")
		var n int
		for _, o := range descs {
			if o.Key == descKey {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d descriptor objects at %s, want 1", d, n, descKey)
			continue
		}
		keys := byHash[d.String()]
		sort.Strings(keys)
		if len(keys) != 1 {
			t.Errorf("%s: %d data objects hold its bytes, want exactly 1: %v", d, len(keys), keys)
			continue
		}
		var desc struct {
			Data string `json:"data"`
			Size int64  `json:"size"`
		}
		raw := readStored(t, reg, descKey)
		if err := json.Unmarshal(raw, &desc); err != nil {
			t.Errorf("%s: descriptor %s: %v: %s", d, descKey, err, raw)
			continue
		}
		if desc.Data != keys[0] {
			t.Errorf("%s: descriptor %s names data %q, the bytes are in %s", d, descKey, desc.Data, keys[0])
		}
	}
	if len(data) != len(blobs) {
		var ks []string
		for _, o := range data {
			ks = append(ks, fmt.Sprintf("%s (%d bytes)", o.Key, o.Size))
		}
		t.Errorf("store holds %d data objects for %d blobs (a loser's copy was not deleted?):\n%s", len(data), len(blobs), strings.Join(ks, "\n"))
	}
	if ups := listStore(t, reg, "uploads/"); len(ups) > 0 {
		t.Errorf("%d upload sessions left after every upload completed: %v", len(ups), ups)
	}
	t.Logf("%d blobs pushed through both replicas at once: %d data objects, one descriptor each", len(blobs), len(data))
}
