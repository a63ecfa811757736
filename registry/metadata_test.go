package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
)

// A tag object is a digest, optionally followed by its writer's stamp
// (opaque here: promotion's sequence number, tested in promote).
func TestParseTag(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in    string
		stamp string
		fail  bool
	}{
		{d, "", false},
		{d + "\n", "", false},
		{d + "\n7\n", "7", false},
		{d + "\nx\n", "x", false},
		{"nope", "", true},
	} {
		got, stamp, err := parseTag([]byte(tc.in))
		if (err != nil) != tc.fail || (!tc.fail && (got.String() != d || stamp != tc.stamp)) {
			t.Errorf("parseTag(%q) = %s %q %v", tc.in, got, stamp, err)
		}
	}
}

// SetTag is a compare-and-set on the tag, refuses a manifest the
// repository lacks, and /v2/ serves a tag written with a stamp.
func TestMetadataSetTag(t *testing.T) {
	e := newEnv(t)
	raw := e.image("src/app", "layer")
	wantStatus(t, e.putManifest("src/app", "1", v1.MediaTypeImageManifest, raw), http.StatusCreated)
	d := digest.FromBytes(raw)
	md := New(e.store, Options{}).Metadata()
	ctx := context.Background()

	m, err := md.Resolve(ctx, "src/app", "1")
	if err != nil || m.Digest != d {
		t.Fatalf("Resolve = %v %v", m.Digest, err)
	}
	if _, err := md.Resolve(ctx, "src/app", "2"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Resolve(missing) = %v", err)
	}
	refs, _ := m.References()
	for _, b := range refs.Blobs {
		if err := md.LinkBlob(ctx, "dst/app", b.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.LinkManifest(ctx, "dst/app", m); err != nil {
		t.Fatal(err)
	}
	if err := md.SetTag(ctx, "dst/app", "1", d, "1", ""); err != nil {
		t.Fatal(err)
	}
	if err := md.SetTag(ctx, "dst/app", "1", d, "2", ""); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("SetTag if absent on an existing tag = %v", err)
	}
	st, err := md.Tag(ctx, "dst/app", "1")
	if err != nil || st.Digest != d || st.Stamp != "1" || st.ETag == "" {
		t.Fatalf("Tag = %+v %v", st, err)
	}
	if err := md.SetTag(ctx, "dst/app", "1", d, "2\n", st.ETag); err == nil {
		t.Fatal("SetTag accepted a stamp with a newline")
	}
	if err := md.SetTag(ctx, "dst/app", "1", d, "2", "stale"); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("SetTag with a stale ETag = %v", err)
	}
	if err := md.SetTag(ctx, "dst/app", "1", d, "2", st.ETag); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodGet, "/v2/dst/app/manifests/1", nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	// A blob's digest is not a manifest.
	if _, err := md.Resolve(ctx, "src/app", refs.Blobs[0].Digest.String()); !errors.Is(err, ErrNotManifest) {
		t.Fatalf("Resolve(blob digest) = %v", err)
	}
}

// Linking a blob is one operation for /v2/ and promotion: a blob the
// registry lacks links nothing, and a link puts its repository in the
// catalog.
func TestMetadataLinkBlob(t *testing.T) {
	e := newEnv(t)
	raw := e.image("src/app", "layer")
	wantStatus(t, e.putManifest("src/app", "1", v1.MediaTypeImageManifest, raw), http.StatusCreated)
	md := New(e.store, Options{}).Metadata()
	ctx := context.Background()
	m, err := md.Resolve(ctx, "src/app", "1")
	if err != nil {
		t.Fatal(err)
	}
	refs, _ := m.References()
	missing := digest.FromString("not stored")
	if err := md.LinkBlob(ctx, "dst/app", missing); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("LinkBlob(missing blob) = %v, want not found", err)
	}
	if ok, err := md.RepositoryExists(ctx, "dst/app"); err != nil || ok {
		t.Fatalf("a failed link created the repository: %v %v", ok, err)
	}
	for range 2 { // the second finds the link and writes nothing
		if err := md.LinkBlob(ctx, "dst/app", refs.Blobs[0].Digest); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := md.RepositoryExists(ctx, "dst/app"); err != nil || !ok {
		t.Fatalf("RepositoryExists after a link = %v %v", ok, err)
	}
	wantStatus(t, e.do(http.MethodHead, "/v2/dst/app/blobs/"+refs.Blobs[0].Digest.String(), nil), http.StatusOK)
}
