package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/tombstone"
)

// env is a registry served over HTTP on a filesystem store, and a
// collector on the same store.
type env struct {
	t     *testing.T
	dir   string
	store storage.Store
	reg   *registry.Registry
	srv   *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, t.TempDir())
}

// newEnvOn is an env on the store in dir (another replica, when dir is
// another env's).
func newEnvOn(t *testing.T, dir string) *env {
	t.Helper()
	gin.SetMode(gin.TestMode)
	store, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(store, registry.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e := gin.New()
	reg.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &env{t: t, dir: dir, store: store, reg: reg, srv: srv}
}

// collector returns a collector of e with opts (no fence wait unless set).
func (e *env) collector(opts Options) *Collector {
	if opts.Fence == 0 {
		opts.Fence = -1
	}
	if opts.LinkTTL == 0 {
		opts.LinkTTL = -1
	}
	return New(e.store, e.reg.Metadata(), promote.NewLedgerDigests(e.store), opts)
}

// run runs a collection to the end, after the registry's background
// writes.
func (e *env) run(opts Options) Report {
	e.t.Helper()
	e.reg.Wait()
	rep, err := e.collector(opts).Run(context.Background())
	if err != nil {
		e.t.Fatalf("run: %v", err)
	}
	return rep
}

func (e *env) do(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func (e *env) pushBlob(repo string, data []byte) v1.Descriptor {
	e.t.Helper()
	d := digest.FromBytes(data)
	res, b := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data)
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("push blob: %d %s", res.StatusCode, b)
	}
	return v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: d, Size: int64(len(data))}
}

func (e *env) putManifest(repo, ref, mediaType string, raw []byte) digest.Digest {
	e.t.Helper()
	res, b := e.do("PUT", "/v2/"+repo+"/manifests/"+ref, raw, "Content-Type", mediaType)
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("put manifest %s:%s: %d %s", repo, ref, res.StatusCode, b)
	}
	return digest.FromBytes(raw)
}

// image pushes an image of the given layer contents (and a config unique
// to name) and tags it tag ("" : by digest only). subject, if set, makes
// it a referrer.
func (e *env) image(repo, tag, name string, subject *v1.Descriptor, layers ...string) v1.Descriptor {
	e.t.Helper()
	cfg := e.pushBlob(repo, []byte(`{"name":"`+name+`"}`))
	cfg.MediaType = v1.MediaTypeImageConfig
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: cfg, Subject: subject, Layers: []v1.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, e.pushBlob(repo, []byte(l)))
	}
	return e.putTagged(repo, tag, v1.MediaTypeImageManifest, m)
}

// putTagged pushes manifest m by tag, or by digest when tag is "".
func (e *env) putTagged(repo, tag, mediaType string, m any) v1.Descriptor {
	e.t.Helper()
	raw, _ := json.Marshal(m)
	ref := tag
	if ref == "" {
		ref = digest.FromBytes(raw).String()
	}
	d := e.putManifest(repo, ref, mediaType, raw)
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(raw))}
}

// index pushes an index of children.
func (e *env) index(repo, tag string, children ...v1.Descriptor) v1.Descriptor {
	e.t.Helper()
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: children}
	idx.SchemaVersion = 2
	return e.putTagged(repo, tag, v1.MediaTypeImageIndex, idx)
}

func (e *env) has(key string) bool {
	_, err := e.store.Stat(context.Background(), key)
	return err == nil
}

// manifestKeys are the keys a manifest occupies in repo: link and record.
func manifestKeys(repo string, d digest.Digest) []string {
	return []string{registry.ManifestLinkKey(repo, d), registry.ManifestKey(d)}
}

// blobKeys are the keys of a blob linked in repo: link, descriptor and
// its data.
func (e *env) blobKeys(repo string, d digest.Digest) []string {
	e.t.Helper()
	keys := []string{registry.BlobLinkKey(repo, d), registry.BlobKey(d)}
	b, err := readSmall(context.Background(), e.store, registry.BlobKey(d), 1<<20)
	if err != nil {
		e.t.Fatalf("descriptor %s: %v", d, err)
	}
	data, _, err := registry.DescriptorData(b)
	if err != nil {
		e.t.Fatal(err)
	}
	return append(keys, data...)
}

// imageKeys are every key of an image pushed with e.image (manifest,
// config and layers), read before it is collected.
func (e *env) imageKeys(repo string, d digest.Digest) []string {
	e.t.Helper()
	man, err := e.reg.Metadata().ManifestRecord(context.Background(), d)
	if err != nil {
		e.t.Fatal(err)
	}
	refs, err := man.References()
	if err != nil {
		e.t.Fatal(err)
	}
	keys := manifestKeys(repo, d)
	for _, b := range refs.Blobs { // config and layers
		keys = append(keys, e.blobKeys(repo, b.Digest)...)
	}
	return keys
}

// hasTomb reports whether objectKey has a tombstone.
func (e *env) hasTomb(objectKey string) bool {
	e.t.Helper()
	_, _, err := tombstone.Read(context.Background(), e.store, objectKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

func (e *env) wantPresent(keys ...string) {
	e.t.Helper()
	for _, k := range keys {
		if !e.has(k) {
			e.t.Errorf("%s was deleted, want kept", k)
		}
	}
}

func (e *env) wantGone(keys ...string) {
	e.t.Helper()
	for _, k := range keys {
		if e.has(k) {
			e.t.Errorf("%s is still there, want freed", k)
		}
	}
}

// verify checks the registry's invariants and that no run left
// tombstones or sweep entries.
func (e *env) verify() {
	e.t.Helper()
	problems, err := registry.Verify(context.Background(), e.store)
	if err != nil || len(problems) > 0 {
		e.t.Errorf("Verify: %v %q", err, problems)
	}
	for _, prefix := range []string{"gc/sweeps/", "gc/clock/"} {
		if keys := e.keys(prefix); len(keys) > 0 {
			e.t.Errorf("left under %s: %q", prefix, keys)
		}
	}
	if left, err := tombstone.All(context.Background(), e.store); err != nil || len(left) > 0 {
		e.t.Errorf("tombstones left: %v %v", left, err)
	}
}

// keys lists every key under prefix.
func (e *env) keys(prefix string) []string {
	e.t.Helper()
	var out []string
	err := storage.Walk(context.Background(), e.store, prefix, func(o storage.Info) error {
		out = append(out, o.Key)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// registryKeys lists every key but the collector's own (gc/) and the tag
// journal and index (which reading tags folds).
func (e *env) registryKeys() []string {
	var out []string
	for _, k := range e.keys("") {
		if !strings.HasPrefix(k, "gc/") && !strings.Contains(k, "/_tagjournal/") && !strings.Contains(k, "/_tagindex/") {
			out = append(out, k)
		}
	}
	return out
}

// age sets the modification time of keys (fs: key k is file dir/k) to
// d ago.
func (e *env) age(d time.Duration, keys ...string) {
	e.t.Helper()
	at := time.Now().Add(-d)
	for _, k := range keys {
		if err := os.Chtimes(filepath.Join(e.dir, k), at, at); err != nil {
			e.t.Fatal(err)
		}
	}
}

// writeLedgerRecord stores a promotion ledger record naming d in repo,
// where promotion claims it (ledger/chains/<h>/<inverted seq>).
func (e *env) writeLedgerRecord(repo string, d digest.Digest, seq int) {
	e.t.Helper()
	rec := promote.Record{ID: fmt.Sprintf("%016x-00000000", seq), Digest: d, Repository: repo, Tag: "prod", Seq: int64(seq)}
	b, _ := json.Marshal(rec)
	key := fmt.Sprintf("ledger/chains/%040x/%012d", seq, 999999999999-seq)
	if _, err := e.store.PutIfAbsent(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		e.t.Fatal(err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func (e *env) putObject(key, content string) {
	e.t.Helper()
	if _, err := e.store.Put(context.Background(), key, strings.NewReader(content), int64(len(content))); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) putData(key string) { e.putObject(key, "data") }

func (e *env) verifyProblems() []string {
	e.t.Helper()
	problems, err := registry.Verify(context.Background(), e.store)
	if err != nil {
		e.t.Fatal(err)
	}
	return problems
}
