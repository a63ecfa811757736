package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
)

// A manifest's descriptors declare sizes, and clients trust them: a puller
// reads exactly that many bytes, and a verifier that checks a size before
// a digest would accept a truncated or padded stream. So a manifest PUT
// refuses a descriptor whose size differs from what the registry stores
// under its digest: the blob's length for a config or layer, the stored
// manifest's length for an index child or a subject.
//
// The stock registry (distribution v3.1.2, registry/storage/*manifesthandler.go)
// checks presence only, so there is no code to copy: MANIFEST_INVALID (400)
// is the spec's code for a manifest that fails a validity check, and the
// message names the descriptor the way the manifest's JSON does.
//
// The sizes come from what the presence check already read (the blob
// descriptor, the manifest record): no request is added to the push path.
// Only a subject costs a lookup of its own, and only when it is stored
// here: OCI 1.1 lets a referrer be pushed before its subject.

// referenceName names the i-th entry of a manifest's References() as its
// JSON does: config then layers[n] for an image (distribution's order),
// manifests[n] for an index.
func referenceName(index bool, i int) string {
	switch {
	case index:
		return "manifests[" + strconv.Itoa(i) + "]"
	case i == 0:
		return "config"
	default:
		return "layers[" + strconv.Itoa(i-1) + "]"
	}
}

// checkDeclaredSize refuses a descriptor whose declared size is not the
// stored size of what it names (what: "blob" or "manifest").
func checkDeclaredSize(name string, desc v1.Descriptor, what string, stored int64) error {
	if desc.Size == stored {
		return nil
	}
	msg := fmt.Sprintf("%s %s declares %d bytes, the %s has %d", name, desc.Digest, desc.Size, what, stored)
	return manifestInvalid(msg, map[string]any{
		"descriptor": name,
		"digest":     desc.Digest.String(),
		"declared":   desc.Size,
		"size":       stored,
	})
}

// checkSubjectSize checks a subject's declared size when the subject is a
// manifest of the repository; an absent subject is fine (see above).
func (r *Registry) checkSubjectSize(ctx context.Context, name string, subject *v1.Descriptor) error {
	rec, err := r.meta.ManifestInRepo(ctx, name, subject.Digest)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkDeclaredSize("subject", *subject, "manifest", int64(len(rec.Raw)))
}
