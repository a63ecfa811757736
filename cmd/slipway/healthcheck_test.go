package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/internal/testpki"
)

func TestHealthURL(t *testing.T) {
	for addr, want := range map[string]string{
		":5000":               "http://127.0.0.1:5000/healthz",
		"0.0.0.0:8080":        "http://127.0.0.1:8080/healthz",
		"[::]:5000":           "http://127.0.0.1:5000/healthz",
		"127.0.0.2:5001":      "http://127.0.0.2:5001/healthz",
		"[::1]:5000":          "http://[::1]:5000/healthz",
		"registry.local:5000": "http://registry.local:5000/healthz",
	} {
		if got, err := healthURL(addr, false); err != nil || got != want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	if got, err := healthURL(":5000", true); err != nil || got != "https://127.0.0.1:5000/healthz" {
		t.Errorf("healthURL(\":5000\", tls) = %q, %v", got, err)
	}
	if got, err := healthURL("5000", false); err == nil {
		t.Errorf("healthURL(\"5000\") = %q, want an error", got)
	}
}

// healthcheck runs `slipway healthcheck args...` with env as the only
// variables.
func healthcheck(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"healthcheck"}, args...), nil, &out, &errb,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return code, out.String(), errb.String()
}

func TestHealthcheckStatus(t *testing.T) {
	var status atomic.Int32 // what the server answers
	status.Store(http.StatusOK)
	paths := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		if r.URL.Path == "/slow" {
			time.Sleep(2 * time.Second)
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// Without --url: the port of http.addr from the environment, /healthz.
	if code, out, errb := healthcheck(map[string]string{"SLIPWAY_HTTP_ADDR": addr}); code != 0 || !strings.Contains(out, addr+"/healthz") {
		t.Fatalf("healthy server: exit %d, stdout %q, stderr %q", code, out, errb)
	}
	if p := <-paths; p != "/healthz" || len(paths) != 0 {
		t.Fatalf("requested %q (and %d more), want one /healthz", p, len(paths))
	}
	status.Store(http.StatusServiceUnavailable)
	if code, _, errb := healthcheck(nil, "--url", srv.URL+"/healthz"); code != 1 || !strings.Contains(errb, "503") {
		t.Fatalf("503: exit %d, stderr %q; want 1 naming the status", code, errb)
	}
	status.Store(http.StatusFound) // a redirect is not followed, and not healthy
	if code, _, _ := healthcheck(nil, "--url", srv.URL+"/healthz"); code != 1 {
		t.Fatalf("302: exit %d, want 1", code)
	}
	status.Store(http.StatusOK)
	start := time.Now()
	if code, _, errb := healthcheck(nil, "--url", srv.URL+"/slow", "--timeout", "200ms"); code != 1 || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("slow server: exit %d after %s, stderr %q; want 1 after the 200ms timeout", code, time.Since(start), errb)
	}
	if code, _, _ := healthcheck(map[string]string{"SLIPWAY_HTTP_ADDR": "127.0.0.1:" + strconv.Itoa(closedPort(t))}); code != 1 {
		t.Fatalf("nothing listening: exit %d, want 1", code)
	}
	if code, _, errb := healthcheck(map[string]string{"SLIPWAY_LOG_LEVEL": "loud"}); code != 1 || !strings.Contains(errb, "SLIPWAY_LOG_LEVEL") {
		t.Fatalf("invalid configuration: exit %d, stderr %q; want 1 naming the variable", code, errb)
	}
	if code, _, _ := healthcheck(nil, "extra"); code != 2 {
		t.Fatalf("extra argument: exit %d, want 2", code)
	}
}

// TestHealthcheckServe: the default URL reaches a real `slipway serve`
// configured by the same variables.
func TestHealthcheckServe(t *testing.T) {
	env := map[string]string{
		"SLIPWAY_HTTP_ADDR":               "127.0.0.1:" + strconv.Itoa(closedPort(t)),
		"SLIPWAY_STORAGE_FILESYSTEM_ROOT": t.TempDir(),
		"SLIPWAY_ADMIN_PASSWORD":          "healthcheck-admin-password",
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int, 1)
	go func() {
		var out, errb bytes.Buffer
		served <- run(ctx, []string{"serve"}, nil, &out, &errb, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	defer func() {
		cancel()
		if code := <-served; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, errb := healthcheck(env)
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck against serve on %s: exit %d, stderr %q", env["SLIPWAY_HTTP_ADDR"], code, errb)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closedPort is a loopback port nothing listens on (just released).
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestHealthcheckTLS: with http.tls set, the default URL is HTTPS and the
// server's certificate (for another name) is not in the way.
func TestHealthcheckTLS(t *testing.T) {
	certFile, keyFile := testpki.NewCA(t, "healthcheck test CA").Server(t, "registry.example.com").Files(t, t.TempDir(), "tls")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	env := map[string]string{
		"SLIPWAY_HTTP_ADDR":          strings.TrimPrefix(srv.URL, "https://"),
		"SLIPWAY_HTTP_TLS_CERT_FILE": certFile,
		"SLIPWAY_HTTP_TLS_KEY_FILE":  keyFile,
	}
	if code, out, errb := healthcheck(env); code != 0 || !strings.Contains(out, srv.URL+"/healthz") {
		t.Fatalf("TLS server: exit %d, stdout %q, stderr %q", code, out, errb)
	}
}
