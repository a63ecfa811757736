// Package stocktest writes synthetic stock registry storage layouts for
// tests: the objects distribution's storage writes for blobs, layer
// links, manifest revisions and tags, on a storage/fs store in a
// temporary directory.
package stocktest

import (
	"bytes"
	"context"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// Layout is a stock registry layout being written. Dir is the stock
// registry's rootdirectory; Store is a storage/fs store rooted there.
type Layout struct {
	T     testing.TB
	Dir   string
	Store storage.Store
}

// New starts an empty layout in a temporary directory.
func New(t testing.TB) *Layout {
	t.Helper()
	dir := t.TempDir()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &Layout{T: t, Dir: dir, Store: s}
}

// Put writes one object.
func (l *Layout) Put(key string, b []byte) {
	l.T.Helper()
	if _, err := l.Store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		l.T.Fatal(err)
	}
}

// Blob stores content in the blob store and returns its digest.
func (l *Layout) Blob(content string) digest.Digest {
	l.T.Helper()
	d := digest.FromString(content)
	l.Put(stocklayout.BlobKey(d), []byte(content))
	return d
}

// LinkPath is "<alg>/<hex>/link", the tail of every link key.
func LinkPath(d digest.Digest) string {
	return string(d.Algorithm()) + "/" + d.Encoded() + "/link"
}

// RepoKey is the prefix of repository repo's keys.
func RepoKey(repo string) string { return stocklayout.Root + "repositories/" + repo + "/" }

// Layer links blob d into repo.
func (l *Layout) Layer(repo string, d digest.Digest) {
	l.T.Helper()
	l.Put(RepoKey(repo)+"_layers/"+LinkPath(d), []byte(d))
}

// Revision links manifest d into repo.
func (l *Layout) Revision(repo string, d digest.Digest) {
	l.T.Helper()
	l.Put(RepoKey(repo)+"_manifests/revisions/"+LinkPath(d), []byte(d))
}

// Tag points repo:tag at d (current link and index entry).
func (l *Layout) Tag(repo, tag string, d digest.Digest) {
	l.T.Helper()
	p := RepoKey(repo) + "_manifests/tags/" + tag + "/"
	l.Put(p+"current/link", []byte(d))
	l.Put(p+"index/"+LinkPath(d), []byte(d))
}

// Manifest stores raw as a manifest revision of repo, as a push does:
// the bytes in the blob store, then the revision link.
func (l *Layout) Manifest(repo, raw string) digest.Digest {
	l.T.Helper()
	d := l.Blob(raw)
	l.Revision(repo, d)
	return d
}
