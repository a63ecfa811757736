package registry

import (
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/internal/names"
)

// Register adds the /v2/ routes to a router (an engine, or a group that
// carries middleware such as authorization).
func (r *Registry) Register(e gin.IRouter) {
	e.Any("/v2", r.serve)
	e.Any("/v2/*path", r.serve)
}

// serve dispatches a /v2/ request on its route (RouteOf: the one parse of
// the request's path, made by the outermost middleware when there is one)
// to the handler of its kind and method.
func (r *Registry) serve(c *gin.Context) {
	c.Header("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := RouteOf(c)
	if !ok {
		r.fail(c, oci(errcode.ErrorCodeUnsupported, "unknown /v2/ route", nil).withStatus(http.StatusNotFound))
		return
	}
	if rt.Name != "" && !names.ValidRepository(rt.Name) {
		r.fail(c, oci(errcode.ErrorCodeNameInvalid, "invalid repository name", rt.Name))
		return
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
