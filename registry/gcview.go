package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// What the garbage collector (package gc) reads of the registry's layout:
// the key prefixes, how a key names a repository and a digest, what a
// descriptor and a session name. The collector deletes keys; only this
// package says what they mean.

// Key prefixes of the registry's objects (paths.go).
const (
	RepositoriesPrefix = "repositories/"
	BlobsPrefix        = "blobs/"
	ManifestsPrefix    = "manifests/"
	DataPrefix         = "data/"
	UploadsPrefix      = "uploads/"
)

// Kinds of keys below a repository (RepoKey.Kind).
const (
	KeyTags      = "_tags"
	KeyManifests = "_manifests"
	KeyBlobs     = "_blobs"
	KeyReferrers = "_referrers"
)

// RepoKey is a key below RepositoriesPrefix, cut into its parts.
type RepoKey struct {
	Repo string
	Kind string // KeyTags, KeyManifests, KeyBlobs, KeyReferrers, or another "_" kind (journal, index)
	// Digest: the linked manifest or blob (KeyManifests, KeyBlobs), or
	// the referrer (KeyReferrers).
	Digest digest.Digest
	// Subject: the subject of a referrer entry (KeyReferrers).
	Subject digest.Digest
}

// ParseRepoKey cuts a key below RepositoriesPrefix; ok is false for a key
// that is not one of the registry's (or, for links and referrer entries,
// names no valid digest).
func ParseRepoKey(key string) (k RepoKey, ok bool) {
	rest, found := strings.CutPrefix(key, RepositoriesPrefix)
	if !found {
		return k, false
	}
	name, kind, id, found := splitRepoKey(rest)
	if !found {
		return k, false
	}
	k.Repo, k.Kind = name, kind
	switch kind {
	case KeyManifests, KeyBlobs:
		d, err := digest.Parse(strings.Replace(id, "/", ":", 1))
		if err != nil {
			return k, false
		}
		k.Digest = d
	case KeyReferrers:
		parts := strings.Split(id, "/")
		if len(parts) != 3 {
			return k, false
		}
		s, err1 := digest.Parse(parts[0] + ":" + parts[1])
		r, err2 := digest.Parse(strings.Replace(parts[2], "-", ":", 1))
		if err1 != nil || err2 != nil {
			return k, false
		}
		k.Subject, k.Digest = s, r
	}
	return k, true
}

// RecordDigest is the digest a blob descriptor key (BlobsPrefix) or a
// manifest record key (ManifestsPrefix) is for.
func RecordDigest(key string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(key, BlobsPrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(key, ManifestsPrefix); !ok {
			return "", false
		}
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", false
	}
	d, err := digest.Parse(parts[0] + ":" + parts[2])
	return d, err == nil && fanout(parts[2]) == parts[1]
}

// Keys of the objects the collector deletes or reads.
func BlobKey(d digest.Digest) string                      { return blobKey(d) }
func ManifestKey(d digest.Digest) string                  { return manifestKey(d) }
func BlobLinkKey(repo string, d digest.Digest) string     { return blobLinkKey(repo, d) }
func ManifestLinkKey(repo string, d digest.Digest) string { return manifestLinkKey(repo, d) }
func ReferrerKey(repo string, subject, referrer digest.Digest) string {
	return referrerKey(repo, subject, referrer)
}

// RepoPrefix is the prefix of every key of repository repo.
func RepoPrefix(repo string) string { return repoKey(repo) }

// DescriptorData lists the data objects a blob descriptor's bytes name,
// and the blob's size.
func DescriptorData(b []byte) (keys []string, size int64, err error) {
	var bd blobDesc
	if err := json.Unmarshal(b, &bd); err != nil {
		return nil, 0, fmt.Errorf("blob descriptor: %w", err)
	}
	for _, s := range bd.segments() {
		keys = append(keys, s.Key)
		size += s.Size
	}
	return keys, size, nil
}

// SessionData lists the data objects the upload session stored under key
// (UploadsPrefix + id) with bytes b names: its segments and its implicit
// first segment's key (named even when the record does not list it).
func SessionData(key string, b []byte) ([]string, error) {
	var rec sessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("upload session %s: %w", key, err)
	}
	keys := []string{firstSegmentKey(strings.TrimPrefix(key, UploadsPrefix))}
	for _, s := range rec.Segments {
		keys = append(keys, s.Key)
	}
	return keys, nil
}

// ManifestRecord reads the stored manifest d, linked in a repository or
// not (cached: records are content-addressed).
func (m *Metadata) ManifestRecord(ctx context.Context, d digest.Digest) (Manifest, error) {
	return m.manifest(ctx, d)
}
