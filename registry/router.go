package registry

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/gin-gonic/gin"
)

// route is one parsed /v2/ path.
type route struct {
	kind string // base, catalog, tags, blob, upload, manifest, referrers
	name string // repository
	ref  string // digest, tag or upload id
}

// Route kinds, also used as low-cardinality metric labels.
const (
	KindBase      = "base"
	KindCatalog   = "catalog"
	KindTags      = "tags"
	KindBlob      = "blob"
	KindUpload    = "blob_upload"
	KindManifest  = "manifest"
	KindReferrers = "referrers"
)

var tagPattern = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// Classify names the kind of a /v2/ path without validating it, for logs
// and metrics. It returns "" for paths outside /v2/.
func Classify(path string) string {
	rt, ok := parseRoute(path)
	if !ok {
		return ""
	}
	return rt.kind
}

// parseRoute splits a /v2/ path. Repository names may contain '/', so the
// path is cut at the last route marker.
func parseRoute(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return route{kind: KindBase}, true
		}
		return route{}, false
	}
	switch rest {
	case "":
		return route{kind: KindBase}, true
	case "_catalog":
		return route{kind: KindCatalog}, true
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: KindTags, name: name}, true
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		id := strings.TrimPrefix(strings.TrimPrefix(rest[i+len("/blobs/uploads"):], "/"), "")
		if !strings.Contains(id, "/") {
			return route{kind: KindUpload, name: rest[:i], ref: id}, true
		}
	}
	for _, m := range []struct{ marker, kind string }{
		{"/blobs/", KindBlob}, {"/manifests/", KindManifest}, {"/referrers/", KindReferrers},
	} {
		if i := strings.LastIndex(rest, m.marker); i > 0 {
			ref := rest[i+len(m.marker):]
			if ref != "" && !strings.Contains(ref, "/") {
				return route{kind: m.kind, name: rest[:i], ref: ref}, true
			}
		}
	}
	return route{}, false
}

// Register adds the /v2/ routes to an engine.
func (r *Registry) Register(e *gin.Engine) {
	e.Any("/v2", r.serve)
	e.Any("/v2/*path", r.serve)
}

func (r *Registry) serve(c *gin.Context) {
	c.Header("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := parseRoute(c.Request.URL.Path)
	if !ok {
		r.fail(c, oci(errcode.ErrorCodeUnsupported, "unknown /v2/ route", nil).withStatus(http.StatusNotFound))
		return
	}
	if rt.name != "" {
		if _, err := reference.WithName(rt.name); err != nil {
			r.fail(c, oci(errcode.ErrorCodeNameInvalid, "invalid repository name", rt.name))
			return
		}
	}
	m := c.Request.Method
	switch rt.kind {
	case KindBase:
		if m == http.MethodGet || m == http.MethodHead {
			c.Header("Content-Type", "application/json")
			c.String(http.StatusOK, "{}")
			return
		}
	case KindCatalog:
		if m == http.MethodGet {
			r.catalog(c)
			return
		}
	case KindTags:
		if m == http.MethodGet {
			r.listTags(c, rt.name)
			return
		}
	case KindReferrers:
		if m == http.MethodGet {
			r.referrers(c, rt.name, rt.ref)
			return
		}
	case KindBlob:
		switch m {
		case http.MethodGet, http.MethodHead:
			r.getBlob(c, rt.name, rt.ref)
			return
		case http.MethodDelete:
			r.deleteBlob(c, rt.name, rt.ref)
			return
		}
	case KindUpload:
		if rt.ref == "" {
			if m == http.MethodPost {
				r.startUpload(c, rt.name)
				return
			}
			break
		}
		switch m {
		case http.MethodGet:
			r.uploadStatus(c, rt.name, rt.ref)
			return
		case http.MethodPatch:
			r.patchUpload(c, rt.name, rt.ref)
			return
		case http.MethodPut:
			r.finishUpload(c, rt.name, rt.ref)
			return
		case http.MethodDelete:
			r.cancelUpload(c, rt.name, rt.ref)
			return
		}
	case KindManifest:
		switch m {
		case http.MethodGet, http.MethodHead:
			r.getManifest(c, rt.name, rt.ref)
			return
		case http.MethodPut:
			r.putManifest(c, rt.name, rt.ref)
			return
		case http.MethodDelete:
			r.deleteManifest(c, rt.name, rt.ref)
			return
		}
	}
	r.fail(c, oci(errcode.ErrorCodeUnsupported, "method not allowed on this route", nil).withStatus(http.StatusMethodNotAllowed))
}

func validName(name string) bool {
	_, err := reference.WithName(name)
	return err == nil
}
