package promote

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// api serves the service's /api/v1 routes.
func (e *env) api() *gin.Engine {
	g := gin.New()
	e.svc.Register(g.Group("/api/v1"))
	return g
}

func call(t *testing.T, g *gin.Engine, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, req)
	return w.Code, w.Header(), w.Body.Bytes()
}

// TestReleaseAPI: every refusal's status, code and message, then a
// release made, read, listed and rolled back over HTTP.
func TestReleaseAPI(t *testing.T) {
	e := newEnv(t)
	g := e.api()
	e.pushImage("staging/api:1.0", 512, 1)
	e.pushImage("staging/worker:1.0", 512, 1)
	e.promote(Request{Source: "staging/worker:1.0", To: "production"})
	e.pushImage("staging/worker:1.0", 512, 1)
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code, msg                string
	}{
		{"bad json", "POST", "/api/v1/releases", `{"to":`, 400, "bad_request", ""},
		{"unknown field", "POST", "/api/v1/releases", `{"to":"production","imgs":[]}`, 400, "bad_request", ""},
		{"no images", "POST", "/api/v1/releases", `{"to":"production","images":[]}`, 400, CodeInvalid, "at least one image"},
		{"duplicate target", "POST", "/api/v1/releases", `{"to":"production","images":[{"source":"staging/api:1.0"},{"source":"staging/api@sha256:` + strings.Repeat("a", 64) + `","tag":"1.0"}]}`, 400, CodeInvalid, "both target production/api:1.0"},
		{"unknown stage", "POST", "/api/v1/releases", `{"to":"moon","images":[{"source":"staging/api:1.0"}]}`, 400, CodeInvalid, `unknown stage "moon"`},
		{"missing source", "POST", "/api/v1/releases", `{"to":"production","images":[{"source":"staging/api:1.0"},{"source":"staging/gone:1.0"}]}`, 404, CodeNotFound, "staging/gone:1.0 does not exist"},
		{"fixed tag", "POST", "/api/v1/releases", `{"to":"production","images":[{"source":"staging/api:1.0"},{"source":"staging/worker:1.0"}]}`, 409, CodeFixedTag, "production/worker:1.0 is a fixed tag"},
		{"not found", "GET", "/api/v1/releases/7fffffffffffffff-01234567", "", 404, CodeNotFound, "no release"},
		{"bad id", "GET", "/api/v1/releases/nope", "", 404, CodeNotFound, "no release"},
		{"rollback not found", "POST", "/api/v1/releases/7fffffffffffffff-01234567/rollback", "", 404, CodeNotFound, "no release"},
		{"bad limit", "GET", "/api/v1/releases?limit=x", "", 400, CodeInvalid, "limit"},
		{"bad cursor", "GET", "/api/v1/releases?cursor=x", "", 400, CodeInvalid, "cursor"},
	} {
		status, _, body := call(t, g, c.method, c.path, c.body)
		var got Error
		if err := json.Unmarshal(body, &got); err != nil || status != c.status || got.Code != c.code || !strings.Contains(got.Message, c.msg) {
			t.Errorf("%s: %d %s, want %d %s containing %q", c.name, status, body, c.status, c.code, c.msg)
		}
	}
	if ks := e.keys("ledger/releases"); len(ks) != 0 {
		t.Fatalf("refusals wrote %v", ks)
	}

	status, hdr, body := call(t, g, "POST", "/api/v1/releases", `{"to":"production","reason":"r","images":[{"source":"staging/api:1.0","tag":"stable"},{"source":"staging/worker:1.0","tag":"stable"}]}`)
	var rel Release
	if err := json.Unmarshal(body, &rel); err != nil || status != http.StatusCreated || rel.State != ReleaseComplete || len(rel.Members) != 2 ||
		hdr.Get("Location") != "/api/v1/releases/"+rel.ID {
		t.Fatalf("create: %d %s %v", status, body, hdr)
	}
	status, _, body = call(t, g, "GET", "/api/v1/releases/"+rel.ID, "")
	var got Release
	if err := json.Unmarshal(body, &got); err != nil || status != 200 || got.ID != rel.ID || len(got.Members) != 2 || got.Members[0].Release != rel.ID {
		t.Fatalf("get: %d %s", status, body)
	}
	status, _, body = call(t, g, "GET", "/api/v1/releases?limit=1", "")
	var page ReleasePage
	if err := json.Unmarshal(body, &page); err != nil || status != 200 || len(page.Releases) != 1 || page.Releases[0].ID != rel.ID {
		t.Fatalf("list: %d %s", status, body)
	}
	// Both tags were created by the release: no rollback.
	status, _, body = call(t, g, "POST", "/api/v1/releases/"+rel.ID+"/rollback", `{"reason":"x"}`)
	if status != http.StatusConflict || !strings.Contains(string(body), `"code":"conflict"`) || !strings.Contains(string(body), "did not exist before release") {
		t.Fatalf("rollback: %d %s", status, body)
	}
}
