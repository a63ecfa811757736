package registry

import (
	_ "crypto/sha256" // digest algorithms must be linked to be Available
	_ "crypto/sha512"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
)

// parseDigest validates a digest from a URL or query: a known algorithm
// (sha256, sha512) and a well-formed encoding. Anything else is
// DIGEST_INVALID, which is what clients expect for a digest they cannot use.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", oci(errcode.ErrorCodeDigestInvalid, "invalid digest", s)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return d, nil
	}
	return "", oci(errcode.ErrorCodeDigestInvalid, "unsupported digest algorithm", s)
}

var specsVersioned = specs.Versioned{SchemaVersion: 2}
