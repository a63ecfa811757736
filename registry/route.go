package registry

import (
	"context"
	"strings"

	"github.com/gin-gonic/gin"
)

// Route is one parsed /v2/ path: what a request acts on. A request's path
// is parsed once (see WithRoute and RouteOf); the access log and metrics
// label it by Kind, the body guard tells blob uploads from other bodies,
// authorization derives the scope it needs from Kind and Name, and the
// registry dispatches on it.
type Route struct {
	Kind string // one of the Kind* constants
	Name string // repository ("" for base and catalog), not validated: see names.ValidRepository
	Ref  string // digest, tag or upload id ("" for base, catalog, tags and a new upload)
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

// parseRoute splits a /v2/ path. Repository names may contain '/', so the
// path is cut at the last route marker. ok is false, with a zero Route,
// for a path outside /v2/ and for a /v2/ path that names no route.
func parseRoute(path string) (rt Route, ok bool) {
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
	// authorization as "no repository".
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

type routeKey struct{}

// parsedRoute is what a request's context carries: parseRoute's answer for
// one path, a refusal included, so that a path outside /v2/ is not parsed
// again either.
type parsedRoute struct {
	path string
	rt   Route
	ok   bool
}

// WithRoute returns ctx carrying the parse of path. The outermost
// middleware calls it once per request, with the request id in the same
// context, so every later reader (RouteOf) finds it.
func WithRoute(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, routeKey{}, parse(path))
}

func parse(path string) parsedRoute {
	rt, ok := parseRoute(path)
	return parsedRoute{path: path, rt: rt, ok: ok}
}

// RouteOf returns parseRoute(c.Request.URL.Path), parsed at most once per
// request: it reads the route the request's context carries (WithRoute)
// and, when there is none, or one for another path, parses the path and
// stores the result in c.Request's context for the readers after it. So
// each reader (middleware or handler) also works alone, as in unit tests,
// while a served request is parsed once, by its outermost middleware.
func RouteOf(c *gin.Context) (Route, bool) {
	r := c.Request
	if p, found := r.Context().Value(routeKey{}).(parsedRoute); found && p.path == r.URL.Path {
		return p.rt, p.ok
	}
	p := parse(r.URL.Path)
	c.Request = r.WithContext(context.WithValue(r.Context(), routeKey{}, p))
	return p.rt, p.ok
}
