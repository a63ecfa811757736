package integration

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
)

// The token service and API findings of issue 10 (1, 2, 6, 7), black box
// against the real binary.

// tokenBody is a token endpoint's answer, success or error.
type tokenBody struct {
	Token  string `json:"token"`
	Scope  string `json:"scope"`
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	OAuth string `json:"error"`
}

func rawGet(target string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	return req
}

// roundTrip sends req and returns the status and body.
func roundTrip(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func tokenRequest(t *testing.T, req *http.Request) (int, tokenBody) {
	t.Helper()
	status, b := roundTrip(t, req)
	var tb tokenBody
	if err := json.Unmarshal(b, &tb); err != nil {
		t.Fatalf("token endpoint answered %d %q", status, b)
	}
	return status, tb
}

// TestAuthTokenRequestLimits (finding 1): the anonymous request that cost
// 14.7 s of CPU (one scope, 120,000 actions) and requests just over the
// limits (33 scopes, 17 actions) are answered 400 invalid_request; the
// same at the limits are served.
func TestAuthTokenRequestLimits(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	var actions []string
	for i := 1; i <= 120_000; i++ {
		actions = append(actions, "a"+strconv.Itoa(i))
	}
	burn := "repository:staging/app:" + strings.Join(actions, ",")
	scopes := func(n, actions int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "repository:staging/app" + strconv.Itoa(i) + ":" + strings.TrimSuffix(strings.Repeat("pull,", actions), ",")
		}
		return out
	}
	get := func(scopes []string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, reg.URL()+"/auth/token?"+url.Values{"service": {"slipway"}, "scope": scopes}.Encode(), nil)
		return req
	}
	post := func(scopes []string) *http.Request {
		form := url.Values{"grant_type": {"password"}, "username": {reg.User().Username}, "password": {reg.User().Password}, "scope": scopes}
		req, _ := http.NewRequest(http.MethodPost, reg.URL()+"/auth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int // 400 unless set
	}{
		// Unescaped, as the attacker sent it: escaped commas would make the
		// request line larger than Go's 1 MB header limit (431).
		{"GET, 120,000 actions, anonymous", rawGet(reg.URL() + "/auth/token?service=slipway&scope=" + burn), 0},
		// A form body over its limit is 413, as every body over its limit.
		{"POST, 120,000 actions", post([]string{burn}), http.StatusRequestEntityTooLarge},
		{"GET, 33 scopes", get(scopes(33, 1)), 0},
		{"POST, 33 scopes", post(scopes(33, 1)), 0},
		{"GET, 17 actions", get(scopes(1, 17)), 0},
		{"POST, 17 actions", post(scopes(1, 17)), 0},
	} {
		start := time.Now()
		status, body := tokenRequest(t, tc.req)
		t.Logf("%s: %d in %s", tc.name, status, time.Since(start).Round(time.Millisecond))
		wantOAuth := ""
		if tc.req.Method == http.MethodPost {
			wantOAuth = "invalid_request"
		}
		wantStatus := cmp.Or(tc.status, http.StatusBadRequest)
		if status != wantStatus || len(body.Errors) == 0 || body.Errors[0].Code != "UNSUPPORTED" || body.OAuth != wantOAuth {
			t.Errorf("%s: %d %+v, want %d UNSUPPORTED error=%q", tc.name, status, body, wantStatus, wantOAuth)
		}
	}
	for _, req := range []*http.Request{get(scopes(32, 16)), post(scopes(32, 16))} {
		if status, body := tokenRequest(t, req); status != http.StatusOK || body.Token == "" {
			t.Errorf("%s at the limits: %d %+v", req.Method, status, body)
		}
	}
}

// TestAuthPromoteNeedsPull (finding 2): an account with promote (no pull)
// on staging/* and pull, promote on production/* cannot promote
// staging/private:t1, so it cannot pull it from production either.
func TestAuthPromoteNeedsPull(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	tools := harness.NewTools(t)
	rel := createRobot(t, reg, tools, "rel", []harness.Grant{
		{Repos: "staging/*", Actions: []string{"promote"}},
		{Repos: "production/*", Actions: []string{"pull", "promote"}},
	})
	img := ociImage(t, 1, 1024, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err := remote.Write(parseRef(t, reg.Ref("staging/private:t1")), img, as(reg.Admin())); err != nil {
		t.Fatal(err)
	}
	st, body := apiCall(t, reg, rel, http.MethodPost, "/api/v1/promotions", map[string]string{"source": "staging/private:t1", "to": "production"})
	if st != http.StatusForbidden || !strings.Contains(string(body), "promote needs pull and promote on staging/private") {
		t.Errorf("promotion without pull on the source: %d %s, want 403 saying pull and promote are needed", st, body)
	}
	if _, err := remote.Head(parseRef(t, reg.Ref("production/private:t1")), as(rel)); err == nil {
		t.Error("production/private:t1 exists after the refused promotion, and rel pulls it")
	}
}

// TestAuthTokenNamesLikeV2 (finding 6): names /v2/ refuses get no access
// entry in a token, even an admin's; the request itself succeeds.
func TestAuthTokenNamesLikeV2(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	bad := []string{"staging/../production/app", "*", "stagïng/app", "Staging/app"}
	scopes := []string{"repository:staging/app:pull", "registry:catalog:*"}
	for _, n := range bad {
		scopes = append(scopes, "repository:"+n+":pull,push")
	}
	tok := reg.Token(t, reg.Admin(), scopes...)
	var claims struct {
		jwt.RegisteredClaims
		Access []struct {
			Type, Name string
			Actions    []string
		} `json:"access"`
	}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, a := range claims.Access {
		names[a.Type+":"+a.Name] = len(a.Actions) > 0
	}
	if len(names) != 2 || !names["repository:staging/app"] || !names["registry:catalog"] {
		t.Errorf("access of the admin's token: %+v; want staging/app and the catalog only", claims.Access)
	}
	// /v2/ agrees: the name a host-like first component used to pass.
	if st, _ := v2Get(t, reg.URL()+"/v2/Staging/app/tags/list", tok); st != http.StatusBadRequest {
		t.Errorf("GET /v2/Staging/app/tags/list = %d, want 400 NAME_INVALID", st)
	}
}

// TestAuthAPITokens (finding 7): registry tokens (no scope, or a pull
// scope) do not create robots on /api/v1; an API token (scope api:v1:*)
// and Basic credentials do; the API token opens nothing on /v2/.
func TestAuthAPITokens(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	createWith := func(name, auth string) (int, string) {
		body, _ := json.Marshal(map[string]any{"name": name, "grants": []harness.Grant{{Repos: "staging/*", Actions: []string{"pull"}}}})
		req, _ := http.NewRequest(http.MethodPost, reg.URL()+"/api/v1/robots", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		status, b := roundTrip(t, req)
		return status, string(b)
	}
	for _, scopes := range [][]string{nil, {"repository:x:pull"}} {
		tok := reg.Token(t, reg.Admin(), scopes...)
		if st, body := createWith("sneaky", "Bearer "+tok); st != http.StatusUnauthorized || !strings.Contains(body, "registry token") {
			t.Errorf("POST /api/v1/robots with the admin's registry token (scopes %v): %d %s, want 401", scopes, st, body)
		}
	}
	if st, _ := apiCall(t, reg, reg.Admin(), http.MethodGet, "/api/v1/robots/sneaky", nil); st != http.StatusNotFound {
		t.Errorf("GET /api/v1/robots/sneaky = %d: a registry token created a robot", st)
	}
	apiTok := reg.Token(t, reg.Admin(), "api:v1:*")
	if st, body := createWith("with-token", "Bearer "+apiTok); st != http.StatusCreated {
		t.Errorf("POST /api/v1/robots with an API token: %d %s, want 201", st, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(reg.Admin().Username, reg.Admin().Password)
	if st, body := createWith("with-basic", req.Header.Get("Authorization")); st != http.StatusCreated {
		t.Errorf("POST /api/v1/robots with Basic: %d %s, want 201", st, body)
	}
	if st, ch := v2Get(t, reg.URL()+"/v2/", apiTok); st != http.StatusUnauthorized || ch.Error != "invalid_token" {
		t.Errorf("the API token on /v2/: %d %+v, want 401 invalid_token", st, ch)
	}
}
