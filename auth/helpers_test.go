package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage/fs"
)

const (
	ciPass  = "ci-password"
	opsPass = "ops-password"
)

func hashOf(tb testing.TB, pw string, cost int) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		tb.Fatal(err)
	}
	return string(h)
}

// newTestService builds a Service on a fresh filesystem store, with a ci
// user (grants on staging/*) and an ops admin; edit adjusts the options.
func newTestService(tb testing.TB, edit func(*Options)) *Service {
	tb.Helper()
	dir := tb.TempDir()
	store, err := fs.New(filepath.Join(dir, "store"))
	if err != nil {
		tb.Fatal(err)
	}
	a := config.Default().Auth
	a.SigningKey = filepath.Join(dir, "keys", "token.pem")
	a.Users = []config.User{
		{Name: "ci", PasswordHash: hashOf(tb, ciPass, bcrypt.MinCost), Grants: []config.Grant{{Repos: "staging/*", Actions: []string{"pull", "push"}}}},
		{Name: "ops", PasswordHash: hashOf(tb, opsPass, bcrypt.MinCost), Admin: true},
	}
	opts := Options{Auth: a, Stages: config.Default().Stages, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(context.Background(), store, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// engine routes the token endpoint, and /v2/ behind the middleware to a
// handler that answers 200.
func engine(s *Service) *gin.Engine {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.GET("/auth/token", s.Token)
	e.POST("/auth/token", s.Token)
	v2 := e.Group("", s.V2)
	v2.Any("/v2/*path", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	return e
}

func serve(h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func basicHeader(user, pass string) []string {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return []string{"Authorization", req.Header.Get("Authorization")}
}
