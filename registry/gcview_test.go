package registry

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

// The collector's view of the layout agrees with the keys paths.go builds.
func TestGCViewKeys(t *testing.T) {
	d := digest.FromString("m")
	s := digest.FromString("s")
	cases := []struct {
		key  string
		want RepoKey
	}{
		{ManifestLinkKey("a/b", d), RepoKey{Repo: "a/b", Kind: KeyManifests, Digest: d}},
		{BlobLinkKey("a", d), RepoKey{Repo: "a", Kind: KeyBlobs, Digest: d}},
		{ReferrerKey("a/0", s, d), RepoKey{Repo: "a/0", Kind: KeyReferrers, Digest: d, Subject: s}},
		{tagKey("a", "v1"), RepoKey{Repo: "a", Kind: KeyTags}},
		{tagIndexKey("a"), RepoKey{Repo: "a", Kind: "_tagindex"}},
	}
	for _, c := range cases {
		got, ok := ParseRepoKey(c.key)
		if !ok || got != c.want {
			t.Errorf("ParseRepoKey(%q) = %+v %v, want %+v", c.key, got, ok, c.want)
		}
	}
	for _, bad := range []string{"repositories/a", "repositories/a/_blobs/sha256/zz", "blobs/x", "repositories/a/_referrers/sha256/x/y"} {
		if _, ok := ParseRepoKey(bad); ok {
			t.Errorf("ParseRepoKey(%q) ok", bad)
		}
	}
	for _, k := range []string{BlobKey(d), ManifestKey(d)} {
		if got, ok := RecordDigest(k); !ok || got != d {
			t.Errorf("RecordDigest(%q) = %s %v", k, got, ok)
		}
	}
	if _, ok := RecordDigest("blobs/sha256/00/" + d.Encoded()); ok {
		t.Errorf("RecordDigest accepted a wrong fan-out")
	}
	keys, size, err := DescriptorData([]byte(`{"segments":[{"key":"data/aa/1","size":2},{"key":"data/bb/2","size":3}],"size":5}`))
	if err != nil || len(keys) != 2 || keys[1] != "data/bb/2" || size != 5 {
		t.Errorf("DescriptorData = %q %d %v", keys, size, err)
	}
	keys, err = SessionData(UploadsPrefix+"abcd", []byte(`{"segments":[{"key":"data/cc/3","size":1}]}`))
	if err != nil || len(keys) != 2 || keys[0] != "data/ab/abcd" || keys[1] != "data/cc/3" {
		t.Errorf("SessionData = %q %v", keys, err)
	}
}
