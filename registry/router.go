package registry

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
)

// Route is one parsed /v2/ path: what a request acts on. Authorization
// middleware uses it to know which repository and which kind of object a
// request touches.
type Route struct {
	Kind string // one of the Kind* constants
	Name string // repository ("" for base and catalog)
	Ref  string // digest, tag or upload id
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
	rt, ok := ParseRoute(path)
	if !ok {
		return ""
	}
	return rt.Kind
}

// ParseRoute splits a /v2/ path. Repository names may contain '/', so the
// path is cut at the last route marker.
func ParseRoute(path string) (Route, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return Route{Kind: KindBase}, true
		}
		return Route{}, false
	}
	switch rest {
	case "":
		return Route{Kind: KindBase}, true
	case "_catalog":
		return Route{Kind: KindCatalog}, true
	}
	// Every route below names a repository: an empty name would reach
	// authorization as "no repository" (testdata/fuzz/FuzzParseRoute).
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok && name != "" {
		return Route{Kind: KindTags, Name: name}, true
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		// ".../blobs/uploads", ".../blobs/uploads/" or ".../blobs/uploads/<id>",
		// not ".../blobs/uploadsX".
		after := rest[i+len("/blobs/uploads"):]
		id, slash := strings.CutPrefix(after, "/")
		if (after == "" || slash) && !strings.Contains(id, "/") {
			return Route{Kind: KindUpload, Name: rest[:i], Ref: id}, true
		}
	}
	for _, m := range []struct{ marker, kind string }{
		{"/blobs/", KindBlob}, {"/manifests/", KindManifest}, {"/referrers/", KindReferrers},
	} {
		if i := strings.LastIndex(rest, m.marker); i > 0 {
			ref := rest[i+len(m.marker):]
			if ref != "" && !strings.Contains(ref, "/") {
				return Route{Kind: m.kind, Name: rest[:i], Ref: ref}, true
			}
		}
	}
	return Route{}, false
}

// Register adds the /v2/ routes to a router (an engine, or a group that
// carries middleware such as authorization).
func (r *Registry) Register(e gin.IRouter) {
	e.Any("/v2", r.serve)
	e.Any("/v2/*path", r.serve)
}

func (r *Registry) serve(c *gin.Context) {
	c.Header("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := ParseRoute(c.Request.URL.Path)
	if !ok {
		r.fail(c, oci(errcode.ErrorCodeUnsupported, "unknown /v2/ route", nil).withStatus(http.StatusNotFound))
		return
	}
	if rt.Name != "" {
		if !ValidName(rt.Name) {
			r.fail(c, oci(errcode.ErrorCodeNameInvalid, "invalid repository name", rt.Name))
			return
		}
	}
	m := c.Request.Method
	switch rt.Kind {
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
			r.listTags(c, rt.Name)
			return
		}
	case KindReferrers:
		if m == http.MethodGet {
			r.referrers(c, rt.Name, rt.Ref)
			return
		}
	case KindBlob:
		switch m {
		case http.MethodGet, http.MethodHead:
			r.getBlob(c, rt.Name, rt.Ref)
			return
		case http.MethodDelete:
			r.deleteBlob(c, rt.Name, rt.Ref)
			return
		}
	case KindUpload:
		if rt.Ref == "" {
			if m == http.MethodPost {
				r.startUpload(c, rt.Name)
				return
			}
			break
		}
		switch m {
		case http.MethodGet:
			r.uploadStatus(c, rt.Name, rt.Ref)
			return
		case http.MethodPatch:
			r.patchUpload(c, rt.Name, rt.Ref)
			return
		case http.MethodPut:
			r.finishUpload(c, rt.Name, rt.Ref)
			return
		case http.MethodDelete:
			r.cancelUpload(c, rt.Name, rt.Ref)
			return
		}
	case KindManifest:
		switch m {
		case http.MethodGet, http.MethodHead:
			r.getManifest(c, rt.Name, rt.Ref)
			return
		case http.MethodPut:
			r.putManifest(c, rt.Name, rt.Ref)
			return
		case http.MethodDelete:
			r.deleteManifest(c, rt.Name, rt.Ref)
			return
		}
	}
	r.fail(c, oci(errcode.ErrorCodeUnsupported, "method not allowed on this route", nil).withStatus(http.StatusMethodNotAllowed))
}

// maxNameLength bounds a repository name, as distribution's
// reference.NameTotalLengthMax does.
const maxNameLength = 255

// ValidName reports whether name is a repository name: the OCI
// distribution grammar, path components of lowercase letters and digits
// joined by '.', '_', '__' or runs of '-', separated by '/', at most 255
// bytes in all. It is the one check every package uses (/v2/ routes, the
// token service's scopes, promotion, the admin pages), so a name is valid
// everywhere or nowhere. It is stricter than reference.WithName, which also
// takes a leading registry host ("Example.com:5000/app"): a repository
// inside this registry has no host part, and an uppercase or ':' first
// component would otherwise slip past glob grants such as "staging/*".
// Linear in len(name), no allocation.
func ValidName(name string) bool {
	if name == "" || len(name) > maxNameLength {
		return false
	}
	for comp := range strings.SplitSeq(name, "/") {
		if !validComponent(comp) {
			return false
		}
	}
	return true
}

// validComponent: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*.
func validComponent(c string) bool {
	i := 0
	for i < len(c) {
		// A run of letters and digits, at least one.
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start || i == len(c) {
			return i > start
		}
		// One separator, then another run must follow.
		switch sep := c[i]; {
		case sep == '.':
			i++
		case sep == '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case sep == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if i == len(c) {
			return false
		}
	}
	return false // empty component
}

func isLowerAlnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }
