package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"
	// Registers the OCI manifest and index schemas with distribution.
	_ "github.com/distribution/distribution/v3/manifest/ocischema"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
)

// maxManifestSize is the largest manifest accepted (the spec's suggested
// minimum limit, and distribution's).
const maxManifestSize = 4 << 20

// manifestFields are the parts of any manifest the registry reads beyond
// what distribution's schema packages expose (subject, artifactType).
type manifestFields struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// indexTypes are manifests whose references are other manifests.
var indexTypes = map[string]bool{
	v1.MediaTypeImageIndex:             true,
	manifestlist.MediaTypeManifestList: true,
}

// nonDistributable layers may live elsewhere; their presence is not checked.
// The OCI types are deprecated (image-spec keeps them for old Windows
// images), so they are spelled out rather than taken from the deprecated
// constants.
var nonDistributable = map[string]bool{
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	schema2.MediaTypeForeignLayer:                                  true,
}

func manifestUnknown(ref string) *apiError {
	return oci(errcode.ErrorCodeManifestUnknown, "manifest unknown to registry", ref)
}

func manifestInvalid(msg string, detail any) *apiError {
	return oci(errcode.ErrorCodeManifestInvalid, msg, detail)
}

// collectedAnswer turns a garbage-collection race (tombstone.ErrCollected:
// the PUT relies on an object being deleted) into a 404 with code (the
// design's answer: the object is not there; a reference missing from the
// start is distribution's 400), naming the digest, once a committed
// deletion of the object has finished (Metadata.awaitCollected); the
// client pushes again, which brings the object back. Other errors are
// returned as they are.
func (r *Registry) collectedAnswer(ctx context.Context, err error, code errcode.ErrorCode) error {
	ce, ok := collectedKey(err)
	if !ok {
		return err
	}
	r.meta.awaitCollected(ctx, ce)
	detail := ce.Key
	if d, _, ok := digestOfKey(ce.Key); ok {
		detail = d.String()
	}
	return collectedError(code, detail)
}

// collectedError is the answer for a reference garbage collection took.
func collectedError(code errcode.ErrorCode, detail string) error {
	return oci(code, "a blob or manifest this push relies on is being garbage-collected: push it again", detail).withStatus(http.StatusNotFound)
}

// missingReference answers for a reference the repository lacks:
// distribution's 400, or, while a collection runs or just ran
// (sweptLately), the 404 of collectedAnswer. A client checks its blobs
// (HEAD) before the manifest PUT, and a collector may free one in
// between; pushing again brings it back, which a 404 tells it and a 400
// does not.
// sweptLately bounds how long after a collection was last seen a missing
// reference may be its doing: far longer than a client takes between its
// HEADs and its manifest PUT.
const sweptLately = time.Minute

func (r *Registry) missingReference(ctx context.Context, d digest.Digest) error {
	if swept, err := r.meta.guard.SweptRecently(ctx, sweptLately); err == nil && swept {
		return collectedError(errcode.ErrorCodeManifestBlobUnknown, d.String())
	}
	return oci(errcode.ErrorCodeManifestBlobUnknown, "manifest references an unknown blob or manifest", d.String())
}

// parseRef reads a manifest reference: a digest or a tag.
func parseRef(ref string) (tag string, d digest.Digest, err error) {
	if strings.Contains(ref, ":") {
		d, err = parseDigest(ref)
		return "", d, err
	}
	if !names.ValidTag(ref) {
		return "", "", oci(errcode.ErrorCodeTagInvalid, "invalid tag", ref)
	}
	return ref, "", nil
}

func (r *Registry) putManifest(c *gin.Context, name, ref string) {
	ctx := c.Request.Context()
	tag, refDigest, err := parseRef(ref)
	if err != nil {
		r.fail(c, err)
		return
	}
	// OCI 1.1 lets a push by digest name tags too: ?tag=a&tag=b.
	tags := c.QueryArray("tag")
	if tag != "" {
		tags = append([]string{tag}, tags...)
	}
	for _, t := range tags {
		if !names.ValidTag(t) {
			r.fail(c, oci(errcode.ErrorCodeTagInvalid, "invalid tag", t))
			return
		}
	}
	if c.Request.ContentLength > maxManifestSize {
		r.fail(c, oci(errcode.ErrorCodeSizeInvalid, "manifest is larger than 4 MiB", nil).withStatus(http.StatusRequestEntityTooLarge))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(c.Request.Body, maxManifestSize+1))
	if err != nil {
		r.fail(c, manifestInvalid("could not read manifest body", nil))
		return
	}
	if len(raw) > maxManifestSize {
		r.fail(c, oci(errcode.ErrorCodeSizeInvalid, "manifest is larger than 4 MiB", nil).withStatus(http.StatusRequestEntityTooLarge))
		return
	}
	if c.Request.ContentLength >= 0 && int64(len(raw)) != c.Request.ContentLength {
		r.fail(c, manifestInvalid("manifest body shorter than Content-Length", nil))
		return
	}
	alg := digest.Canonical
	if refDigest != "" {
		alg = refDigest.Algorithm()
	} else if q := c.Query("digest"); q != "" {
		qd, err := parseDigest(q)
		if err != nil {
			r.fail(c, err)
			return
		}
		alg = qd.Algorithm()
		refDigest = qd
	}
	d := alg.FromBytes(raw)
	if refDigest != "" && d != refDigest {
		r.fail(c, oci(errcode.ErrorCodeDigestInvalid, "digest does not match manifest", map[string]string{"expected": refDigest.String(), "computed": d.String()}))
		return
	}
	man, fields, err := r.validateManifest(ctx, name, c.GetHeader("Content-Type"), raw, d)
	if err != nil {
		r.fail(c, err)
		return
	}
	// Order is the crash story: content, link, referrer index, tag.
	if err := r.meta.linkManifest(ctx, name, man, fields); err != nil {
		r.fail(c, r.collectedAnswer(ctx, err, errcode.ErrorCodeManifestBlobUnknown))
		return
	}
	if fields.Subject != nil {
		c.Header("OCI-Subject", fields.Subject.Digest.String())
	}
	for _, t := range tags {
		if err := r.meta.setTag(ctx, name, t, d); err != nil {
			r.fail(c, r.collectedAnswer(ctx, err, errcode.ErrorCodeManifestUnknown))
			return
		}
		c.Writer.Header().Add("OCI-Tag", t)
	}
	c.Header("Location", r.opts.PublicURL+"/v2/"+name+"/manifests/"+d.String())
	c.Header("Docker-Content-Digest", d.String())
	c.Header("Content-Length", "0")
	c.Status(http.StatusCreated)
}

// ValidateManifest makes the checks of a /v2/ manifest PUT without HTTP
// (for `slipway import`, docs/architecture.md §7.5): raw, of media type
// mediaType ("": the manifest's own field), must parse as a schema 2
// manifest or index, and everything it references must be in repo with
// the declared sizes (a subject need not be). It reads only. The error is
// the one a PUT would answer with (its message names the problem).
func (r *Registry) ValidateManifest(ctx context.Context, repo, mediaType string, raw []byte, d digest.Digest) (Manifest, error) {
	man, _, err := r.validateManifest(ctx, repo, mediaType, raw, d)
	return man, err
}

// validateManifest parses a manifest with distribution's schema packages and
// checks that everything it references is in the repository.
func (r *Registry) validateManifest(ctx context.Context, name, contentType string, raw []byte, d digest.Digest) (Manifest, *manifestFields, error) {
	var fields manifestFields
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Manifest{}, nil, manifestInvalid("manifest is not valid JSON", err.Error())
	}
	mediaType := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return Manifest{}, nil, manifestInvalid("invalid Content-Type", contentType)
		}
		mediaType = mt
	}
	if mediaType == "" {
		mediaType = fields.MediaType
	}
	if fields.MediaType != "" && fields.MediaType != mediaType {
		return Manifest{}, nil, manifestInvalid("mediaType in manifest does not match Content-Type", map[string]string{"manifest": fields.MediaType, "content_type": mediaType})
	}
	if fields.SchemaVersion != 2 {
		return Manifest{}, nil, manifestInvalid("unsupported schemaVersion (only 2)", fields.SchemaVersion)
	}
	m, _, err := distribution.UnmarshalManifest(mediaType, raw)
	if err != nil {
		return Manifest{}, nil, manifestInvalid("unsupported or malformed manifest", err.Error())
	}
	index := indexTypes[mediaType]
	for i, ref := range m.References() {
		if err := ref.Digest.Validate(); err != nil {
			return Manifest{}, nil, manifestInvalid("manifest references an invalid digest", ref.Digest.String())
		}
		// The sizes to check come from the reads that check presence
		// (descsize.go).
		var size int64
		what := "blob"
		switch {
		case index:
			var rec Manifest
			if rec, err = r.meta.ManifestInRepo(ctx, name, ref.Digest); err == nil {
				size, what = int64(len(rec.Raw)), "manifest"
			}
		case nonDistributable[ref.MediaType]:
			continue
		default:
			var bd blobDesc
			bd, err = r.meta.blobInRepo(ctx, name, ref.Digest)
			size = bd.Size
		}
		if errors.Is(err, storage.ErrNotFound) {
			return Manifest{}, nil, r.missingReference(ctx, ref.Digest)
		}
		if err != nil {
			return Manifest{}, nil, err
		}
		if err := checkDeclaredSize(referenceName(index, i), ref, what, size); err != nil {
			return Manifest{}, nil, err
		}
	}
	if fields.Subject != nil {
		if err := fields.Subject.Digest.Validate(); err != nil {
			return Manifest{}, nil, manifestInvalid("subject has an invalid digest", fields.Subject.Digest.String())
		}
		if err := r.checkSubjectSize(ctx, name, fields.Subject); err != nil {
			return Manifest{}, nil, err
		}
	}
	return Manifest{Digest: d, MediaType: mediaType, Raw: raw}, &fields, nil
}

// resolve finds the manifest a reference names in repository name.
func (r *Registry) resolve(ctx context.Context, name, ref string) (Manifest, error) {
	tag, d, err := parseRef(ref)
	if err != nil {
		return Manifest{}, err
	}
	man, err := r.meta.resolve(ctx, name, tag, d)
	if errors.Is(err, storage.ErrNotFound) {
		return Manifest{}, manifestUnknown(ref)
	}
	return man, err
}

func (r *Registry) getManifest(c *gin.Context, name, ref string) {
	rec, err := r.resolve(c.Request.Context(), name, ref)
	if err != nil {
		r.fail(c, err)
		return
	}
	if !acceptable(c.Request.Header.Values("Accept"), rec.MediaType) {
		r.fail(c, manifestUnknown(ref).withMessage("manifest exists, but in a media type the Accept header excludes: "+rec.MediaType))
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", rec.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(rec.Raw)))
	h.Set("Docker-Content-Digest", rec.Digest.String())
	h.Set("ETag", `"`+rec.Digest.String()+`"`)
	c.Status(http.StatusOK)
	if c.Request.Method != http.MethodHead {
		_, _ = c.Writer.Write(rec.Raw)
	}
}

// acceptable: no Accept header, a wildcard, or the stored type listed. Like
// distribution, a client that lists only other manifest types gets
// MANIFEST_UNKNOWN rather than bytes it cannot parse.
func acceptable(accept []string, mediaType string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if mt == mediaType || mt == "*/*" || mt == "application/*" {
				return true
			}
		}
	}
	return false
}

func (r *Registry) deleteManifest(c *gin.Context, name, ref string) {
	ctx := c.Request.Context()
	tag, d, err := parseRef(ref)
	if err != nil {
		r.fail(c, err)
		return
	}
	if tag != "" {
		if _, err := r.meta.tag(ctx, name, tag); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				err = manifestUnknown(ref)
			}
			r.fail(c, err)
			return
		}
		if err := r.meta.deleteTag(ctx, name, tag); err != nil {
			r.fail(c, err)
			return
		}
		c.Status(http.StatusAccepted)
		return
	}
	rec, err := r.resolve(ctx, name, ref)
	if err != nil {
		r.fail(c, err)
		return
	}
	// Tags first, so no tag is ever left pointing at an unlinked manifest.
	if err := r.meta.untag(ctx, name, d); err != nil {
		r.fail(c, err)
		return
	}
	if err := r.meta.unlinkManifest(ctx, name, rec); err != nil {
		r.fail(c, err)
		return
	}
	c.Status(http.StatusAccepted)
}
