package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway/slipway/promote"
)

func TestPromotionAPI(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	adm := token(t, h, adminUser, adminPass, "repository:staging/app:pull,push")
	if rec := pushImage(t, h, adm, "staging/app", "1.0"); rec.Code != http.StatusCreated {
		t.Fatalf("push = %d %s", rec.Code, rec.Body)
	}
	admin := basic(adminUser, adminPass)
	jsonCT := []string{"Content-Type", "application/json"}
	post := func(body string, hdr ...string) (int, promote.Record, string) {
		rec := send(h, http.MethodPost, "/api/v1/promotions", body, append(hdr, jsonCT...)...)
		var r promote.Record
		_ = json.Unmarshal(rec.Body.Bytes(), &r)
		code := ""
		if rec.Code >= 300 {
			code = apiCode(t, rec.Body.Bytes())
		}
		return rec.Code, r, code
	}

	status, rec, _ := post(`{"source":"staging/app:1.0","to":"production","reason":"ship it"}`, admin...)
	if status != http.StatusCreated || rec.Actor != adminUser || rec.Target != "production/app:1.0" || rec.Outcome != "promoted" {
		t.Fatalf("promote = %d %+v", status, rec)
	}
	if status, again, _ := post(`{"source":"staging/app:1.0","to":"production"}`, admin...); status != http.StatusOK || again.Outcome != "noop" {
		t.Fatalf("promote again = %d %+v, want 200 no-op", status, again)
	}
	// An API token from /auth/token identifies the caller.
	bearerTok := token(t, h, adminUser, adminPass, "api:v1:*")
	if status, _, _ := post(`{"source":"staging/app:1.0","to":"production","tag":"stable"}`, bearer(bearerTok)...); status != http.StatusCreated {
		t.Fatalf("promote with a bearer token = %d", status)
	}

	for _, tc := range []struct {
		name, body string
		hdr        []string
		status     int
		code       string
	}{
		{"anonymous", `{"source":"staging/app:1.0","to":"production"}`, nil, 401, promote.CodeUnauthorized},
		{"no promote grant", `{"source":"staging/app:1.0","to":"production"}`, basic(ciUser, ciPass), 403, promote.CodeDenied},
		{"malformed", `{"source":`, admin, 400, promote.CodeInvalid},
		{"unknown field", `{"source":"staging/app:1.0","to":"production","force":true}`, admin, 400, promote.CodeInvalid},
		{"unknown source", `{"source":"staging/app:2.0","to":"production"}`, admin, 404, promote.CodeNotFound},
		{"edge not configured", `{"source":"production/app:1.0","to":"staging"}`, admin, 409, promote.CodeEdgeNotAllowed},
	} {
		status, _, code := post(tc.body, tc.hdr...)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}

	got := send(h, http.MethodGet, "/api/v1/promotions/"+rec.ID, "", admin...)
	if got.Code != http.StatusOK || !strings.Contains(got.Body.String(), rec.ID) {
		t.Fatalf("GET record = %d %s", got.Code, got.Body)
	}
	if r := send(h, http.MethodGet, "/api/v1/promotions/nope", "", admin...); r.Code != http.StatusNotFound {
		t.Fatalf("GET unknown record = %d", r.Code)
	}
	list := send(h, http.MethodGet, "/api/v1/promotions?repository=app&limit=2", "", admin...)
	var page promote.Page
	if err := json.Unmarshal(list.Body.Bytes(), &page); err != nil || list.Code != 200 || len(page.Records) != 2 || page.NextCursor == "" ||
		page.Records[0].Tag != "stable" {
		t.Fatalf("list = %d %s", list.Code, list.Body)
	}
	if r := send(h, http.MethodGet, "/api/v1/promotions?limit=x", "", admin...); r.Code != 400 {
		t.Fatalf("bad limit = %d", r.Code)
	}
	// Rolling back a promotion that created its tag has nothing to go back to.
	rb := send(h, http.MethodPost, "/api/v1/promotions/"+rec.ID+"/rollback", `{"reason":"oops"}`, append(admin, jsonCT...)...)
	if rb.Code != http.StatusConflict || apiCode(t, rb.Body.Bytes()) != promote.CodeConflict {
		t.Fatalf("rollback = %d %s", rb.Code, rb.Body)
	}

	repos := send(h, http.MethodGet, "/api/v1/repositories", "", admin...)
	if repos.Code != 200 || !strings.Contains(repos.Body.String(), `"name":"production/app"`) || !strings.Contains(repos.Body.String(), `"stage":"staging"`) {
		t.Fatalf("repositories = %d %s", repos.Code, repos.Body)
	}
	tags := send(h, http.MethodGet, "/api/v1/repositories/production/app/tags", "", admin...)
	var tl struct {
		Tags []promote.TagInfo `json:"tags"`
	}
	if err := json.Unmarshal(tags.Body.Bytes(), &tl); err != nil || tags.Code != 200 || len(tl.Tags) != 2 ||
		strings.Join(tl.Tags[0].Stages, ",") != "staging,production" || tl.Tags[0].Platforms[0] != "linux/amd64" || tl.Tags[0].Promoted == nil {
		t.Fatalf("tags = %d %s", tags.Code, tags.Body)
	}
	if r := send(h, http.MethodGet, "/api/v1/repositories/staging/none/tags", "", admin...); r.Code != 404 {
		t.Fatalf("tags of an unknown repository = %d", r.Code)
	}
	// The ci user may pull staging but not see into an unrelated app's ledger it cannot pull.
	if r := send(h, http.MethodGet, "/api/v1/promotions/"+rec.ID, "", basic(ciUser, ciPass)...); r.Code != 200 {
		t.Fatalf("ci reading a production record = %d", r.Code)
	}
}
