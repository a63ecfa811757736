package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/tlsreload"
)

// tlsPollInterval is how often the certificate files are checked for
// changes (besides SIGHUP, which reloads at once).
const tlsPollInterval = 5 * time.Second

// setupTLS reads http.tls's files when it is set: the server then speaks
// TLS, with HTTP/2 offered by ALPN, and with client_ca_file /api/ demands
// a verified client certificate. Call it before routes are added (the
// client certificate check is middleware on e).
func (s *Server) setupTLS(cfg config.TLS, e *gin.Engine) error {
	if !cfg.Enabled() {
		return nil
	}
	r, err := tlsreload.New(tlsreload.Files{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, ClientCAFile: cfg.ClientCAFile}, s.log)
	if err != nil {
		return err
	}
	s.tls = r
	if r.RequireClientCerts() {
		e.Use(requireAPIClientCert)
	}
	return nil
}

// serve serves on the listener, over TLS when configured. ServeTLS turns
// on HTTP/2, which the TLS configuration offers first.
func (s *Server) serve() error {
	if s.tls != nil {
		s.http.TLSConfig = s.tls.Config()
		return s.http.ServeTLS(s.ln, "", "")
	}
	return s.http.Serve(s.ln)
}

// watchTLS reloads the certificate files when they change, until ctx ends.
func (s *Server) watchTLS(ctx context.Context) {
	if s.tls != nil {
		s.tls.Watch(ctx, tlsPollInterval)
	}
}

// ReloadTLS reads the certificate files again now (on SIGHUP) and logs the
// outcome; files that fail to load leave the current certificate serving.
// Without http.tls it only logs that there is nothing to reload.
func (s *Server) ReloadTLS(ctx context.Context) {
	if s.tls == nil {
		s.log.InfoContext(ctx, "reload requested; nothing to reload (http.tls is not set)")
		return
	}
	s.tls.ReloadAndLog(ctx, "SIGHUP")
}

// requireAPIClientCert answers /api/ requests without a verified client
// certificate with 401. The handshake asks every client for one and
// verifies any given (tlsreload: VerifyClientCertIfGiven), so a request
// that reaches here with a certificate holds a verified one; registry
// clients on /v2/ and /auth/token need none.
func requireAPIClientCert(c *gin.Context) {
	p := c.Request.URL.Path
	if p != "/api" && !strings.HasPrefix(p, "/api/") {
		c.Next()
		return
	}
	if st := c.Request.TLS; st == nil || len(st.VerifiedChains) == 0 {
		c.AbortWithStatusJSON(http.StatusUnauthorized, auth.APIError{Code: auth.CodeUnauthorized,
			Message: "a client certificate signed by http.tls.client_ca_file is required on /api/"})
		return
	}
	c.Next()
}
