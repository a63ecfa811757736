package server

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage/fs"
)

func writeRSAKey(t *testing.T, path string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func apiCode(t *testing.T, body []byte) string {
	t.Helper()
	var e auth.APIError
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("not an API error: %q", body)
	}
	return e.Code
}

func createRobot(t *testing.T, h http.Handler, body string) auth.CreatedRobot {
	t.Helper()
	rec := send(h, http.MethodPost, "/api/v1/robots", body, append(basic(adminUser, adminPass), "Content-Type", "application/json")...)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create robot = %d %s", rec.Code, rec.Body)
	}
	var r auth.CreatedRobot
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRobots(t *testing.T) {
	cfg := testConfig(t)
	clk := newClock()
	st, err := fs.New(cfg.Storage.Filesystem.Root)
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: st, writes: map[string]int{}}
	s, _ := newTestServerWith(t, cfg, store, auth.Options{Now: clk.Now})
	h := s.Handler()
	adminHdr := basic(adminUser, adminPass)

	r := createRobot(t, h, `{"name":"ci-bot","description":"CI","grants":[{"repos":"staging/*","actions":["pull","push"]}]}`)
	if r.Login != "robot$ci-bot" || r.ID == "" || r.CreatedBy != adminUser || r.ExpiresAt != nil {
		t.Fatalf("created %+v", r)
	}
	if len(r.Secret) != 43 { // 32 bytes, base64url without padding
		t.Fatalf("secret %q", r.Secret)
	}
	// The secret is stored hashed: it is nowhere in the store.
	raw, _ := os.ReadFile(filepath.Join(cfg.Storage.Filesystem.Root, "auth", "robots", "ci-bot"))
	if len(raw) == 0 || strings.Contains(string(raw), r.Secret) {
		t.Fatalf("stored record %q", raw)
	}

	// Taken name, bad bodies, no rights.
	rec := send(h, http.MethodPost, "/api/v1/robots", `{"name":"ci-bot","grants":[{"repos":"a/*","actions":["pull"]}]}`, adminHdr...)
	if rec.Code != http.StatusConflict || apiCode(t, rec.Body.Bytes()) != "conflict" {
		t.Errorf("duplicate = %d %s", rec.Code, rec.Body)
	}
	for _, bad := range []string{
		`{"name":"Bad Name","grants":[{"repos":"a/*","actions":["pull"]}]}`,
		`{"name":"x","grants":[]}`,
		`{"name":"x","grants":[{"repos":"a/*","actions":["own"]}]}`,
		`{"name":"x","grants":[{"repos":"a/*","actions":["pull"]}],"expires_in":"soon"}`,
		`{"name":"x","grants":[{"repos":"a/*","actions":["pull"]}],"expires_at":"2000-01-01T00:00:00Z"}`,
		`{"name":"x","grants":[{"repos":"a/*","actions":["pull"]}],"admin":true}`,
		`not json`,
	} {
		rec := send(h, http.MethodPost, "/api/v1/robots", bad, adminHdr...)
		if rec.Code != http.StatusBadRequest || apiCode(t, rec.Body.Bytes()) != "bad_request" {
			t.Errorf("%s = %d %s", bad, rec.Code, rec.Body)
		}
	}
	rec = send(h, http.MethodGet, "/api/v1/robots", "", basic(ciUser, ciPass)...)
	if rec.Code != http.StatusForbidden || apiCode(t, rec.Body.Bytes()) != "forbidden" {
		t.Errorf("non-admin list = %d %s", rec.Code, rec.Body)
	}
	rec = send(h, http.MethodGet, "/api/v1/robots", "")
	if rec.Code != http.StatusUnauthorized || apiCode(t, rec.Body.Bytes()) != "unauthorized" {
		t.Errorf("anonymous list = %d %s", rec.Code, rec.Body)
	}
	rec = send(h, http.MethodGet, "/api/v1/robots", "", basic(adminUser, "wrong")...)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("wrong password = %d", rec.Code)
	}
	rec = send(h, http.MethodGet, "/api/v1/robots/nobody", "", adminHdr...)
	if rec.Code != http.StatusNotFound || apiCode(t, rec.Body.Bytes()) != "not_found" {
		t.Errorf("get missing = %d %s", rec.Code, rec.Body)
	}

	// List and get never show the secret; an API token from /auth/token works too.
	adminTok := token(t, h, adminUser, adminPass, "api:v1:*")
	rec = send(h, http.MethodGet, "/api/v1/robots", "", bearer(adminTok)...)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "secret") || !strings.Contains(rec.Body.String(), `"login":"robot$ci-bot"`) {
		t.Fatalf("list = %d %s", rec.Code, rec.Body)
	}
	rec = send(h, http.MethodGet, "/api/v1/robots/ci-bot", "", adminHdr...)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("get = %d %s", rec.Code, rec.Body)
	}

	// The robot logs in like a user, and gets what its grants allow.
	tok := token(t, h, "robot$ci-bot", r.Secret, "repository:staging/app:pull,push", "repository:production/app:pull")
	access := accessOf(t, s, tok)
	if !slices.Equal(actionsFor(access, "repository", "staging/app"), []string{"pull", "push"}) || len(actionsFor(access, "repository", "production/app")) != 0 {
		t.Fatalf("robot access %+v", access)
	}
	if rec := pushImage(t, h, tok, "staging/app", "v1"); rec.Code != http.StatusCreated {
		t.Fatalf("robot push = %d", rec.Code)
	}
	if rec := send(h, http.MethodGet, tokenURL(), "", basic("robot$ci-bot", r.Secret+"x")...); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong secret = %d", rec.Code)
	}
	// A robot is no admin: its API token does not open the robots API.
	if rec := send(h, http.MethodGet, "/api/v1/robots", "", bearer(token(t, h, "robot$ci-bot", r.Secret, "api:v1:*"))...); rec.Code != http.StatusForbidden {
		t.Fatalf("robot on the robots API = %d", rec.Code)
	}

	// Last use is recorded in the background, once a minute at most.
	key := "auth/robots/ci-bot"
	waitFor(t, func() bool { return store.count(key) == 1 })
	for range 10 {
		token(t, h, "robot$ci-bot", r.Secret)
	}
	rec = send(h, http.MethodGet, "/api/v1/robots/ci-bot", "", adminHdr...)
	var view auth.RobotView
	_ = json.Unmarshal(rec.Body.Bytes(), &view)
	if view.LastUsedAt == nil || view.LastUsedAt.Sub(clk.Now()).Abs() > time.Second {
		t.Fatalf("last_used_at %v, now %v", view.LastUsedAt, clk.Now())
	}
	clk.Add(61 * time.Second)
	token(t, h, "robot$ci-bot", r.Secret)
	waitFor(t, func() bool { return store.count(key) == 2 })
	time.Sleep(50 * time.Millisecond)
	if n := store.count(key); n != 2 {
		t.Fatalf("%d last-used writes for 12 logins over 61s, want 2", n)
	}

	// An offline login hands out a refresh token; revocation stops it at once.
	tr := decodeToken(t, postToken(h, url.Values{"grant_type": {"password"}, "username": {"robot$ci-bot"},
		"password": {r.Secret}, "access_type": {"offline"}, "scope": {"repository:staging/app:pull"}}))
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {"repository:staging/app:pull"}}
	decodeToken(t, postToken(h, refresh))

	if rec := send(h, http.MethodDelete, "/api/v1/robots/ci-bot", "", adminHdr...); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	if rec := send(h, http.MethodDelete, "/api/v1/robots/ci-bot", "", adminHdr...); rec.Code != http.StatusNotFound {
		t.Fatalf("revoke again = %d", rec.Code)
	}
	if rec := send(h, http.MethodGet, tokenURL(), "", basic("robot$ci-bot", r.Secret)...); rec.Code != http.StatusUnauthorized {
		t.Fatalf("login after revocation = %d", rec.Code)
	}
	if rec := postToken(h, refresh); rec.Code != http.StatusUnauthorized {
		t.Fatalf("refresh after revocation = %d %s", rec.Code, rec.Body)
	}
	// Re-created under the same name: a new id, the old refresh token stays dead.
	r2 := createRobot(t, h, `{"name":"ci-bot","grants":[{"repos":"staging/*","actions":["pull"]}]}`)
	if r2.ID == r.ID || r2.Secret == r.Secret {
		t.Fatal("re-created robot reuses id or secret")
	}
	if rec := postToken(h, refresh); rec.Code != http.StatusUnauthorized {
		t.Fatalf("old refresh token on a re-created robot = %d", rec.Code)
	}
}

func TestRobotExpiry(t *testing.T) {
	clk := newClock()
	s, _ := newTestServerWith(t, testConfig(t), nil, auth.Options{Now: clk.Now})
	h := s.Handler()
	r := createRobot(t, h, `{"name":"temp","grants":[{"repos":"staging/*","actions":["pull"]}],"expires_in":"1h"}`)
	if r.ExpiresAt == nil || r.ExpiresAt.Sub(clk.Now().Add(time.Hour)).Abs() > time.Second {
		t.Fatalf("expires_at %v", r.ExpiresAt)
	}
	tr := decodeToken(t, send(h, http.MethodGet, "/auth/token?offline_token=true", "", basic("robot$temp", r.Secret)...))
	clk.Add(time.Hour + time.Second)
	if rec := send(h, http.MethodGet, tokenURL(), "", basic("robot$temp", r.Secret)...); rec.Code != http.StatusUnauthorized {
		t.Fatalf("expired robot login = %d", rec.Code)
	}
	if rec := postToken(h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("expired robot refresh = %d", rec.Code)
	}
	at := clk.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	r2 := createRobot(t, h, `{"name":"temp2","grants":[{"repos":"staging/*","actions":["pull"]}],"expires_at":"`+at+`"}`)
	if r2.ExpiresAt == nil || r2.ExpiresAt.Format(time.RFC3339) != at {
		t.Fatalf("expires_at %v, want %s", r2.ExpiresAt, at)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoginThrottle(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.Lockout = config.Lockout{MaxFailures: 10, AddressMaxFailures: 1000, Window: 2 * time.Second}
	clk := newClock()
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{Now: clk.Now})
	h := s.Handler()
	from := func(i int) string { return fmt.Sprintf("198.51.100.%d:1234", i%200) }

	statuses := map[int]int{}
	var retry string
	for i := range 50 {
		rec := send(h, http.MethodGet, tokenURL(), "", append(basic(ciUser, "guess"+strconv.Itoa(i)), "Remote", from(i))...)
		statuses[rec.Code]++
		if rec.Code == http.StatusTooManyRequests {
			retry = rec.Header().Get("Retry-After")
		}
	}
	if statuses[http.StatusUnauthorized] != 10 || statuses[http.StatusTooManyRequests] != 40 {
		t.Fatalf("50 wrong passwords: %v, want 10x401 then 40x429", statuses)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 2 {
		t.Fatalf("Retry-After %q", retry)
	}
	// Locked: even the right password waits (other endpoints too).
	if rec := send(h, http.MethodGet, tokenURL(), "", basic(ciUser, ciPass)...); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("right password while locked = %d", rec.Code)
	}
	if rec := postToken(h, url.Values{"grant_type": {"password"}, "username": {ciUser}, "password": {ciPass}}); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("OAuth2 login while locked = %d", rec.Code)
	}
	if rec := send(h, http.MethodGet, "/api/v1/robots", "", basic(ciUser, ciPass)...); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("API login while locked = %d", rec.Code)
	}
	// Other accounts are not locked.
	token(t, h, adminUser, adminPass)
	clk.Add(2 * time.Second)
	token(t, h, ciUser, ciPass)
}

func TestLoginThrottlePerAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.Lockout = config.Lockout{MaxFailures: 10, AddressMaxFailures: 20, Window: 2 * time.Second}
	clk := newClock()
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{Now: clk.Now})
	h := s.Handler()
	const attacker = "203.0.113.7:4444"
	codes := map[int]int{}
	for i := range 30 {
		rec := send(h, http.MethodGet, tokenURL(), "", append(basic(fmt.Sprintf("user%d", i), "x"), "Remote", attacker)...)
		codes[rec.Code]++
	}
	if codes[http.StatusUnauthorized] != 20 || codes[http.StatusTooManyRequests] != 10 {
		t.Fatalf("30 accounts from one address: %v", codes)
	}
	if rec := send(h, http.MethodGet, tokenURL(), "", append(basic(ciUser, ciPass), "Remote", attacker)...); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("valid login from the locked address = %d", rec.Code)
	}
	// Bad refresh tokens count against the address too.
	if rec := postToken(h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "Remote", attacker); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("refresh from the locked address = %d", rec.Code)
	}
	if rec := send(h, http.MethodGet, tokenURL(), "", append(basic(ciUser, ciPass), "Remote", "192.0.2.50:1")...); rec.Code != http.StatusOK {
		t.Fatalf("valid login from elsewhere = %d", rec.Code)
	}
	clk.Add(2 * time.Second)
	if rec := send(h, http.MethodGet, tokenURL(), "", append(basic(ciUser, ciPass), "Remote", attacker)...); rec.Code != http.StatusOK {
		t.Fatalf("valid login after the window = %d", rec.Code)
	}
}

func TestBcryptNotOnEveryRequest(t *testing.T) {
	var calls atomic.Int64
	clk := newClock()
	s, _ := newTestServerWith(t, testConfig(t), nil, auth.Options{
		Now: clk.Now,
		CompareHash: func(hash, pw []byte) error {
			calls.Add(1)
			return bcrypt.CompareHashAndPassword(hash, pw)
		},
	})
	h := s.Handler()
	// A docker pull of 10 layers: 10 token requests with the password.
	for i := range 10 {
		token(t, h, ciUser, ciPass, fmt.Sprintf("repository:staging/layer%d:pull", i))
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d bcrypt runs for 10 logins, want 1", n)
	}
	// A wrong password is never answered from the cache.
	for range 3 {
		send(h, http.MethodGet, tokenURL(), "", basic(ciUser, "wrong")...)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("%d bcrypt runs after 3 wrong passwords, want 4", n)
	}
	// Refresh tokens need no password at all.
	tr := decodeToken(t, send(h, http.MethodGet, "/auth/token?offline_token=true", "", basic(ciUser, ciPass)...))
	for range 5 {
		decodeToken(t, postToken(h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}))
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("%d bcrypt runs after refreshes, want 4", n)
	}
	// After the cache's 5 minutes, bcrypt once more.
	clk.Add(5*time.Minute + time.Second)
	token(t, h, ciUser, ciPass)
	token(t, h, ciUser, ciPass)
	if n := calls.Load(); n != 5 {
		t.Fatalf("%d bcrypt runs after the cache expired, want 5", n)
	}
}

// bootConfig is a configuration without users, on root.
func bootConfig(t *testing.T, root, keyPath string) config.Config {
	cfg := testConfig(t)
	cfg.Auth.Users = nil
	cfg.Storage.Filesystem.Root = root
	cfg.Auth.SigningKey = keyPath
	return cfg
}

func TestFirstStartAdminFromEnv(t *testing.T) {
	root, key := t.TempDir(), filepath.Join(t.TempDir(), "k.pem")
	cfg := bootConfig(t, root, key)
	cfg.Auth.AdminPassword = "from-the-environment"
	s, logs := newTestServerWith(t, cfg, nil, auth.Options{})
	tok := token(t, s.Handler(), "admin", "from-the-environment", "registry:catalog:*")
	if got := actionsFor(accessOf(t, s, tok), "registry", "catalog"); !slices.Equal(got, []string{"*"}) {
		t.Fatalf("bootstrap admin is no admin: %q", got)
	}
	if strings.Contains(logs.String(), "from-the-environment") {
		t.Fatal("the admin password is in the log")
	}
	if !strings.Contains(logs.String(), "SLIPWAY_ADMIN_PASSWORD") {
		t.Fatalf("creation not logged:\n%s", logs)
	}
	// A restart with another password keeps the first.
	cfg.Auth.AdminPassword = "changed-later"
	s2, logs2 := newTestServerWith(t, cfg, nil, auth.Options{})
	token(t, s2.Handler(), "admin", "from-the-environment")
	if rec := send(s2.Handler(), http.MethodGet, tokenURL(), "", basic("admin", "changed-later")...); rec.Code != http.StatusUnauthorized {
		t.Fatalf("the new password replaced the stored one: %d", rec.Code)
	}
	if !strings.Contains(logs2.String(), "is ignored") || strings.Contains(logs2.String(), "changed-later") {
		t.Fatalf("restart log:\n%s", logs2)
	}
}

func TestFirstStartGeneratedAdmin(t *testing.T) {
	root, key := t.TempDir(), filepath.Join(t.TempDir(), "k.pem")
	cfg := bootConfig(t, root, key)
	s, logs := newTestServerWith(t, cfg, nil, auth.Options{})
	var password string
	n := 0
	for _, l := range logs.lines(t) {
		if pw, ok := l["password"].(string); ok {
			password, n = pw, n+1
		}
	}
	if n != 1 || len(password) < 20 {
		t.Fatalf("generated password logged %d times (%q):\n%s", n, password, logs)
	}
	token(t, s.Handler(), "admin", password)
	stored, err := os.ReadFile(filepath.Join(root, "auth", "users", "admin"))
	if err != nil || strings.Contains(string(stored), password) || !strings.Contains(string(stored), "$2a$") {
		t.Fatalf("stored admin %q %v", stored, err)
	}

	// Another replica (or a restart) on the same store: same admin, nothing printed.
	s2, logs2 := newTestServerWith(t, cfg, nil, auth.Options{})
	if strings.Contains(logs2.String(), password) || strings.Contains(logs2.String(), `"password"`) {
		t.Fatalf("second server printed a password:\n%s", logs2)
	}
	token(t, s2.Handler(), "admin", password)
	stored2, _ := os.ReadFile(filepath.Join(root, "auth", "users", "admin"))
	if string(stored2) != string(stored) {
		t.Fatal("second server replaced the stored admin")
	}
	// Configured users replace the bootstrap admin.
	cfg3 := testConfig(t)
	cfg3.Storage.Filesystem.Root = root
	s3, _ := newTestServerWith(t, cfg3, nil, auth.Options{})
	if rec := send(s3.Handler(), http.MethodGet, tokenURL(), "", basic("admin", password)...); rec.Code != http.StatusUnauthorized {
		t.Fatalf("bootstrap admin still logs in beside configured users: %d", rec.Code)
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	s, logs := newTestServer(t, nil)
	h := s.Handler()
	tr := decodeToken(t, send(h, http.MethodGet, "/auth/token?offline_token=true&scope=repository:staging/a:pull", "", basic(ciUser, ciPass)...))
	decodeToken(t, postToken(h, url.Values{"grant_type": {"password"}, "username": {ciUser}, "password": {ciPass}, "access_type": {"offline"}}))
	decodeToken(t, postToken(h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}))
	send(h, http.MethodGet, tokenURL(), "", basic(ciUser, "wrong-secret-guess")...)
	r := createRobot(t, h, `{"name":"bot","grants":[{"repos":"staging/*","actions":["pull"]}]}`)
	token(t, h, "robot$bot", r.Secret)
	send(h, http.MethodGet, "/v2/staging/a/tags/list", "", bearer(tr.Token)...)
	out := logs.String()
	for _, secret := range []string{ciPass, adminPass, "wrong-secret-guess", tr.Token, tr.RefreshToken, r.Secret, "Basic "} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
	if !strings.Contains(out, `"msg":"login failed"`) {
		t.Error("failed login not logged")
	}
	// Access lines name the account (never its credentials).
	accounts := map[string]bool{}
	for _, l := range logs.lines(t) {
		if l["msg"] == "request" {
			if a, ok := l["account"].(string); ok {
				accounts[fmt.Sprint(l["route"], " ", a)] = true
			}
		}
	}
	for _, want := range []string{"/auth/token ci", "/auth/token robot$bot", "tags ci", "/api/v1/robots " + adminUser} {
		if !accounts[want] {
			t.Errorf("no access line with route+account %q in %v", want, accounts)
		}
	}
}
