package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/registry"
)

// TestRouteParsedOnce: behind the server's middlewares a /v2/ request's
// handler finds its route in the request context, as observe parsed it;
// reading it parses nothing again.
func TestRouteParsedOnce(t *testing.T) {
	s, _ := newTestServer(t, nil)
	e := gin.New()
	e.Use(s.observe, s.recover, s.guardBody)
	var got registry.Route
	e.Any("/v2/*path", func(c *gin.Context) {
		before := c.Request
		rt, ok := registry.RouteOf(c)
		if !ok || c.Request != before {
			t.Errorf("RouteOf = %+v %v; parsed again: %v", rt, ok, c.Request != before)
		}
		got = rt
		c.Status(http.StatusNoContent)
	})
	for _, tc := range []struct {
		method, path string
		body         string
		want         registry.Route
	}{
		{http.MethodGet, "/v2/team/app/manifests/latest", "", registry.Route{Kind: registry.KindManifest, Name: "team/app", Ref: "latest"}},
		{http.MethodPatch, "/v2/team/app/blobs/uploads/0a1b", "data", registry.Route{Kind: registry.KindUpload, Name: "team/app", Ref: "0a1b"}},
	} {
		got = registry.Route{}
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if got != tc.want {
			t.Errorf("%s %s: route %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}
}
