package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/internal/httpbody"
	"github.com/slipway/slipway/internal/trickle"
)

// Finding 4 of issue 10: /api/v1 bodies over their limit are 413 (not a
// 400 "unexpected EOF" from a truncated read), and a body is one JSON
// object: trailing data and duplicate names are 400.
func TestAPIBodies(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	adm := token(t, h, adminUser, adminPass, "repository:staging/app:pull,push")
	if rec := pushImage(t, h, adm, "staging/app", "1.0"); rec.Code != http.StatusCreated {
		t.Fatalf("push = %d %s", rec.Code, rec.Body)
	}
	big := strings.Repeat("a", 64<<10)
	grants := `"grants":[{"repos":"staging/*","actions":["pull"]}]`
	routes := []struct {
		path                       string
		oversize, trailing, dupKey string
	}{
		{
			"/api/v1/promotions",
			`{"source":"staging/app:1.0","to":"production","reason":"` + big + `"}`,
			`{"source":"staging/app:1.0","to":"production"} {"source":"staging/app:1.0","to":"staging"}`,
			`{"source":"staging/app:1.0","to":"production","to":"staging"}`,
		},
		{
			"/api/v1/promotions/unknown-id/rollback",
			`{"reason":"` + big + `"}`,
			`{"reason":"oops"}garbage`,
			`{"reason":"a","reason":"b"}`,
		},
		{
			"/api/v1/robots",
			`{"name":"big",` + grants + `,"description":"` + big + `"}`,
			`{"name":"trailing",` + grants + `}]`,
			`{"name":"dup",` + grants + `,"name":"dup2"}`,
		},
	}
	for _, rt := range routes {
		for _, tc := range []struct {
			name, body string
			status     int
			code, msg  string
		}{
			{"oversize", rt.oversize, http.StatusRequestEntityTooLarge, httpbody.CodeTooLarge, "larger than 64 KiB"},
			{"trailing data", rt.trailing, http.StatusBadRequest, httpbody.CodeBadRequest, "after top-level value"},
			{"duplicate key", rt.dupKey, http.StatusBadRequest, httpbody.CodeBadRequest, "duplicate"},
		} {
			rec := send(h, http.MethodPost, rt.path, tc.body, append(basic(adminUser, adminPass), "Content-Type", "application/json")...)
			var e struct{ Code, Message string }
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("%s %s: %d %s, want %d {%q, …%q…}", rt.path, tc.name, rec.Code, rec.Body, tc.status, tc.code, tc.msg)
			}
		}
	}
	// Nothing was done by the refused bodies.
	rec := send(h, http.MethodGet, "/api/v1/promotions", "", basic(adminUser, adminPass)...)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"id"`) {
		t.Fatalf("ledger after refused promotions: %d %s", rec.Code, rec.Body)
	}
	rec = send(h, http.MethodGet, "/api/v1/robots", "", basic(adminUser, adminPass)...)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"id"`) {
		t.Fatalf("robots after refused creations: %d %s", rec.Code, rec.Body)
	}
}

// The token endpoint's form over its limit is 413, in its usual envelope.
func TestTokenFormOversize(t *testing.T) {
	s, _ := newTestServer(t, nil)
	rec := postToken(s.Handler(), url.Values{
		"grant_type": {"password"}, "username": {ciUser}, "password": {ciPass},
		"scope": {"repository:staging/app:pull" + strings.Repeat(",pull", 64<<10/5)},
	})
	var body struct {
		Errors []struct{ Code, Message string }
		Error  string `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusRequestEntityTooLarge || body.Error != "invalid_request" || len(body.Errors) != 1 ||
		!strings.Contains(body.Errors[0].Message, "larger than") {
		t.Fatalf("oversized token form = %d %s, want 413 invalid_request", rec.Code, rec.Body)
	}
}

// trickleBody runs trickle.Send, failing the test if it cannot connect.
func trickleBody(t testing.TB, addr, method, path string, chunked bool, interval, limit time.Duration, hdr ...string) trickle.Result {
	t.Helper()
	res, err := trickle.Send(addr, method, path, chunked, interval, limit, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tcpServer runs a server on 127.0.0.1 with the given body deadlines.
func tcpServer(t *testing.T, body, stall time.Duration) (*Server, string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.HTTP.BodyTimeout, cfg.HTTP.UploadStallTimeout = body, stall
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{})
	runServer(t, s)
	return s, s.Addr()
}

// Finding 3 of issue 10: a body trickling a byte at a time held any route
// forever. Now the body of a request that is not a blob upload must arrive
// within http.body_timeout; past it the server answers and closes.
func TestSlowBodyDeadline(t *testing.T) {
	const deadline, margin = time.Second, 1500 * time.Millisecond
	s, addr := tcpServer(t, deadline, time.Minute)
	pushTok := token(t, s.Handler(), ciUser, ciPass, "repository:staging/app:pull,push")
	adminBasic := "Authorization: " + basic(adminUser, adminPass)[1]
	form := "Content-Type: application/x-www-form-urlencoded"
	jsonCT := "Content-Type: application/json"
	for _, tc := range []struct {
		method, path string
		status       int // of the answer, when the server can still send one
		hdr          []string
	}{
		{"POST", "/auth/token", http.StatusRequestTimeout, []string{form}},
		{"POST", "/admin/login", http.StatusRequestTimeout, []string{form}},
		{"POST", "/api/v1/promotions", http.StatusRequestTimeout, []string{jsonCT, adminBasic}},
		{"POST", "/api/v1/robots", http.StatusRequestTimeout, []string{jsonCT, adminBasic}},
		// Authenticated, but a manifest is no blob: the deadline holds.
		{"PUT", "/v2/staging/app/manifests/1.0", 0, []string{"Content-Type: application/vnd.oci.image.manifest.v1+json", "Authorization: Bearer " + pushTok}},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s %s chunked=%t", tc.method, tc.path, chunked), func(t *testing.T) {
				t.Parallel()
				got := trickleBody(t, addr, tc.method, tc.path, chunked, 100*time.Millisecond, 5*time.Second, tc.hdr...)
				t.Logf("answer %d after %s, closed after %s", got.Status, got.Answered, got.Closed)
				if got.Closed < 0 || got.Closed > deadline+margin {
					t.Fatalf("connection closed after %s (-1: still open after 5s; answer %d), want within %s", got.Closed, got.Status, deadline+margin)
				}
				if got.Closed < deadline-100*time.Millisecond {
					t.Errorf("closed after %s, before the %s deadline (answer %d)", got.Closed, deadline, got.Status)
				}
				if tc.status != 0 && got.Status != tc.status {
					t.Errorf("answer %d, want %d", got.Status, tc.status)
				}
			})
		}
	}
}

// Without credentials (or with ones that do not allow the request), a
// request with a body is refused at once, without waiting for the body,
// and its connection closed: even with a generous body deadline.
func TestRefusedBodyNotAwaited(t *testing.T) {
	const prompt = time.Second
	s, addr := tcpServer(t, time.Minute, time.Minute)
	pullTok := token(t, s.Handler(), ciUser, ciPass, "repository:staging/app:pull")
	ciBasic := "Authorization: " + basic(ciUser, ciPass)[1]
	for _, tc := range []struct {
		method, path string
		status       int
		hdr          []string
	}{
		{"PATCH", "/v2/staging/app/blobs/uploads/someid", http.StatusUnauthorized, nil},
		{"PUT", "/v2/staging/app/blobs/uploads/someid?digest=sha256:" + strings.Repeat("0", 64), http.StatusUnauthorized, nil},
		{"POST", "/v2/staging/app/blobs/uploads/?digest=sha256:" + strings.Repeat("0", 64), http.StatusUnauthorized, nil},
		{"PUT", "/v2/staging/app/manifests/1.0", http.StatusUnauthorized, []string{"Authorization: Bearer not-a-token"}},
		{"PATCH", "/v2/staging/app/blobs/uploads/someid", http.StatusUnauthorized, []string{"Authorization: Bearer " + pullTok}},
		{"PATCH", "/v2/production/app/blobs/uploads/someid", http.StatusForbidden, []string{"Authorization: Bearer " + pullTok}},
		{"POST", "/api/v1/robots", http.StatusUnauthorized, []string{"Content-Type: application/json"}},
		{"POST", "/api/v1/robots", http.StatusForbidden, []string{"Content-Type: application/json", ciBasic}},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s %s chunked=%t", tc.method, tc.path, chunked), func(t *testing.T) {
				t.Parallel()
				got := trickleBody(t, addr, tc.method, tc.path, chunked, 100*time.Millisecond, 5*time.Second, tc.hdr...)
				t.Logf("answer %d after %s, closed after %s", got.Status, got.Answered, got.Closed)
				if got.Status != tc.status || got.Answered > prompt {
					t.Errorf("answer %d after %s, want %d within %s", got.Status, got.Answered, tc.status, prompt)
				}
				if got.Closed < 0 || got.Closed > prompt {
					t.Errorf("connection closed after %s (-1: still open after 5s), want within %s", got.Closed, prompt)
				}
			})
		}
	}
}

// slowReader yields its data a piece at a time, a pause before each.
type slowReader struct {
	data  []byte
	piece int
	pause time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	n := copy(p[:min(len(p), r.piece)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// A blob upload keeps no overall deadline: a slow but steady client
// succeeds long past http.body_timeout and http.upload_stall_timeout. One
// that trickles is cut off once the server has waited upload_stall_timeout
// for too little.
func TestSlowBlobUpload(t *testing.T) {
	const stall = time.Second
	s, addr := tcpServer(t, 500*time.Millisecond, stall)
	tok := token(t, s.Handler(), ciUser, ciPass, "repository:staging/app:pull,push")
	base := "http://" + addr

	// start opens an upload session and returns its URL.
	start := func() *url.URL {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v2/staging/app/blobs/uploads/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload = %s", resp.Status)
		}
		u, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	// 64 KiB in 8 KiB pieces, one every 300 ms: about 2.4 s in all.
	data := bytes.Repeat([]byte("slipway!"), 8<<10)
	dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	u := start()
	q := u.Query()
	q.Set("digest", dgst)
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), &slowReader{data: data, piece: 8 << 10, pause: 300 * time.Millisecond})
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = int64(len(data))
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("slow upload = %s %s", resp.Status, b)
	}
	if took := time.Since(began); took < 2*time.Second {
		t.Fatalf("the slow upload took %s: not slow enough to prove anything", took)
	}
	if rec := send(s.Handler(), http.MethodHead, "/v2/staging/app/blobs/"+dgst, "", bearer(tok)...); rec.Code != http.StatusOK {
		t.Fatalf("HEAD of the slowly uploaded blob = %d", rec.Code)
	}

	// A byte every 100 ms is under 4 KiB a second: cut off after the
	// stall timeout (plus the time the first bytes took).
	got := trickleBody(t, addr, http.MethodPatch, start().RequestURI(), false, 100*time.Millisecond, 5*time.Second,
		"Authorization: Bearer "+tok, "Content-Type: application/octet-stream")
	if got.Closed < 0 || got.Closed > stall+1500*time.Millisecond {
		t.Fatalf("trickling upload: closed after %s (-1: still open after 5s), answer %d; want closed within %s", got.Closed, got.Status, stall+1500*time.Millisecond)
	}
	if got.Closed < stall-100*time.Millisecond {
		t.Fatalf("trickling upload closed after %s, before the %s stall timeout", got.Closed, stall)
	}
}

// deadlines records the read deadlines set on a fake connection.
type deadlines struct{ set []time.Time }

func (d *deadlines) SetReadDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// byteAtATime yields one byte per Read, at once, forever.
type byteAtATime struct{}

func (byteAtATime) Read(p []byte) (int, error) { p[0] = ' '; return 1, nil }
func (byteAtATime) Close() error               { return nil }

// A blob upload's stall budget counts only the time spent waiting in Read:
// the handler storing what it read, between reads, is not the client's
// slowness. Bytes that come fast do not refill the budget until
// uploadStallBytes have arrived.
func TestUploadStallBudget(t *testing.T) {
	const stall = time.Hour // far from the test's own durations
	d := &deadlines{}
	b := &guardedBody{ReadCloser: byteAtATime{}, rc: d, stall: stall}
	p := make([]byte, 1)
	_, _ = b.Read(p)
	time.Sleep(20 * time.Millisecond) // the handler at work
	before := time.Now()
	_, _ = b.Read(p)
	if got := d.set[1].Sub(before); got < stall-time.Millisecond {
		t.Fatalf("after a pause outside Read the deadline is %s away, want about the whole %s", got, stall)
	}
	// Waiting inside Read does count: a slow reader uses the budget up.
	b = &guardedBody{ReadCloser: slowByte{10 * time.Millisecond}, rc: d, stall: stall}
	for range 3 {
		_, _ = b.Read(p)
	}
	if b.waited < 30*time.Millisecond || b.got != 3 {
		t.Fatalf("after 3 slow reads of 1 byte: waited %s, got %d; want >= 30ms and 3", b.waited, b.got)
	}
	b.got = uploadStallBytes - 1
	_, _ = b.Read(p)
	if b.waited != 0 || b.got != 0 {
		t.Fatalf("after %d bytes: waited %s, got %d; want the budget refilled", uploadStallBytes, b.waited, b.got)
	}
}

// slowByte yields one byte per Read after a pause.
type slowByte struct{ pause time.Duration }

func (s slowByte) Read(p []byte) (int, error) { time.Sleep(s.pause); p[0] = ' '; return 1, nil }
func (slowByte) Close() error                 { return nil }
