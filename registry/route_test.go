package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestRouteOfOtherPath: a context carrying the route of another path (a
// request rebuilt with a new path but the old context) is parsed anew,
// never answered with the stale route.
func TestRouteOfOtherPath(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/v2/app/manifests/latest", nil)
	r = r.WithContext(WithRoute(context.Background(), "/v2/app/blobs/uploads/"))
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = r
	rt, ok := RouteOf(c)
	if want := (Route{Kind: KindManifest, Name: "app", Ref: "latest"}); !ok || rt != want {
		t.Fatalf("RouteOf = %+v %v, want %+v", rt, ok, want)
	}
	if c.Request == r {
		t.Fatal("the parsed route was not stored")
	}
}
