package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/storagetest"
)

func init() { gin.SetMode(gin.TestMode) }

// env is one Registry instance served over real HTTP on a filesystem store.
type env struct {
	t     *testing.T
	dir   string
	store *fs.Store
	srv   *httptest.Server
	reg   *Registry
}

// newEnv starts a registry on a fresh store.
func newEnv(t *testing.T) *env { return newEnvOn(t, t.TempDir()) }

// newEnvOn starts another registry (own Store, own caches) on an existing
// store directory: another replica, or the same one after a restart.
func newEnvOn(t *testing.T, dir string) *env { return newEnvWith(t, dir, Options{}) }

// newEnvWith is newEnvOn with registry options (the logger is set here).
func newEnvWith(t *testing.T, dir string, opts Options) *env {
	t.Helper()
	store, err := fs.New(dir)
	if err != nil {
		t.Fatalf("fs.New: %v", err)
	}
	e := gin.New()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.Logger = quiet
	reg := New(store, opts)
	reg.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	// Whatever a test did, accepted or rejected, a client must never see
	// an inconsistent repository (outside data included, through the
	// registry's bucket view).
	var verified storage.Store = store
	if opts.BucketView != nil {
		verified = withView{store, opts.BucketView}
	}
	t.Cleanup(func() {
		problems, err := Verify(context.Background(), verified)
		if err != nil || len(problems) > 0 {
			t.Errorf("store does not verify: %v %q", err, problems)
		}
	})
	return &env{t: t, dir: dir, store: store, srv: srv, reg: reg}
}

// in returns the env reporting to t (a subtest's), so helpers that stop a
// test stop the right one.
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	body []byte
}

// do sends a request; hdr are header name/value pairs.
func (e *env) do(method, path string, body []byte, hdr ...string) resp {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	return e.doReader(method, path, r, int64(len(body)), hdr...)
}

// doReader sends a request with a streamed body of a given Content-Length
// (-1: chunked).
func (e *env) doReader(method, path string, body io.Reader, size int64, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(path), body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = size
	if body == nil {
		req.ContentLength = 0
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		// Reported, not fatal: the checks that follow say what was missed.
		e.t.Errorf("%s %s: %v", method, path, err)
		return resp{&http.Response{StatusCode: -1, Header: http.Header{}, Request: req}, []byte(err.Error())}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp{res, b}
}

func (e *env) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return e.srv.URL + path
}

// raw writes a hand-made HTTP/1.1 request on a fresh connection, half-closes
// it (so a body shorter than its Content-Length ends early) and reads the
// answer.
func (e *env) raw(method, path string, contentLength int, body []byte, hdr ...string) resp {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n", method, path, contentLength)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	b.WriteString("\r\n")
	if _, err := conn.Write(append([]byte(b.String()), body...)); err != nil {
		e.t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	sent, _ := http.NewRequest(method, path, nil) // for resp.String and HEAD handling
	res, err := http.ReadResponse(bufio.NewReader(conn), sent)
	if err != nil {
		e.t.Fatalf("%s %s: reading response: %v", method, path, err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	return resp{res, rb}
}

// errorCodes returns the OCI error codes of an error body.
func (r resp) errorCodes() []string {
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &env)
	var codes []string
	for _, e := range env.Errors {
		codes = append(codes, e.Code)
	}
	return codes
}

func (r resp) String() string {
	return fmt.Sprintf("%s %s → %d %q", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body)
}

// wantStatus fails unless the response has the status.
func wantStatus(t *testing.T, r resp, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("want %d, got %s", status, r)
	}
}

// wantError checks the status and that the body is an OCI error envelope
// whose first code is code.
func wantError(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("want %d %s, got %s", status, code, r)
		return
	}
	if r.Request.Method == http.MethodHead {
		return // no body to check
	}
	if codes := r.errorCodes(); len(codes) == 0 || codes[0] != code {
		t.Errorf("want error code %s, got %s (Content-Length %q)", code, r, r.Header.Get("Content-Length"))
	}
}

func wantHeader(t *testing.T, r resp, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Errorf("%s: header %s = %q, want %q", r, name, got, want)
	}
}

// visiblePrefixes are where a write becomes visible (or leaves bytes).
var visiblePrefixes = []string{"data/", "blobs/", "manifests/", "repositories/", "catalog/", "uploads/"}

// wantNoNewKeys fails if the store holds a key under visiblePrefixes that
// was not in before: a rejected write must leave nothing behind.
func wantNoNewKeys(t *testing.T, s storage.Store, before []string) {
	t.Helper()
	for _, k := range storagetest.Keys(t, s, "") {
		if slices.Contains(before, k) {
			continue
		}
		for _, p := range visiblePrefixes {
			if strings.HasPrefix(k, p) {
				t.Errorf("rejected write left key %s", k)
			}
		}
	}
}

// wantNoKeysUnder fails if any key starts with one of the prefixes.
func wantNoKeysUnder(t *testing.T, s storage.Store, prefixes ...string) {
	t.Helper()
	for _, k := range storagetest.Keys(t, s, "") {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				t.Errorf("unexpected key %s", k)
			}
		}
	}
}

// wantKeysUnder fails unless the keys under prefix are exactly want.
func wantKeysUnder(t *testing.T, s storage.Store, prefix string, want ...string) {
	t.Helper()
	var got []string
	for _, k := range storagetest.Keys(t, s, "") {
		if strings.HasPrefix(k, prefix) {
			got = append(got, k)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys under %s: %q, want %q", prefix, got, want)
	}
}

// pushBlob uploads a blob monolithically (POST ?digest=) and returns its
// sha256 digest.
func (e *env) pushBlob(repo string, data []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(data)
	r := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data)
	wantStatus(e.t, r, http.StatusCreated)
	return d
}

// uploadID is the session id at the end of an upload Location.
func uploadID(loc string) string {
	loc, _, _ = strings.Cut(loc, "?")
	return loc[strings.LastIndex(loc, "/")+1:]
}

// startUpload opens an upload session and returns its Location.
func (e *env) startUpload(repo string) string {
	e.t.Helper()
	r := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil)
	wantStatus(e.t, r, http.StatusAccepted)
	loc := r.Header.Get("Location")
	if loc == "" {
		e.t.Fatalf("no Location: %s", r)
	}
	return loc
}

// withQuery appends a query parameter to a Location.
func withQuery(loc, kv string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + kv
	}
	return loc + "?" + kv
}

// image pushes a config and one layer to repo and returns an OCI image
// manifest referencing them (not pushed).
func (e *env) image(repo string, layer string) []byte {
	e.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := e.pushBlob(repo, cfg)
	ld := e.pushBlob(repo, []byte(layer))
	return ociManifest(
		v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: ld, Size: int64(len(layer))},
	)
}

func ociManifest(config v1.Descriptor, layers ...v1.Descriptor) []byte {
	m := v1.Manifest{Versioned: specsVersioned, MediaType: v1.MediaTypeImageManifest, Config: config, Layers: layers}
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	b, _ := json.Marshal(m)
	return b
}

func ociIndex(children ...v1.Descriptor) []byte {
	b, _ := json.Marshal(v1.Index{Versioned: specsVersioned, MediaType: v1.MediaTypeImageIndex, Manifests: children})
	return b
}

// putManifest PUTs a manifest with a Content-Type.
func (e *env) putManifest(repo, ref, mediaType string, raw []byte) resp {
	e.t.Helper()
	return e.do("PUT", "/v2/"+repo+"/manifests/"+ref, raw, "Content-Type", mediaType)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// readKey returns a stored object's bytes.
func readKey(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Get(context.Background(), key, storage.GetOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}
