package tlsreload

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/internal/testpki"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is the serial number of the certificate a new handshake with r's
// configuration gets.
func served(t *testing.T, r *Reloader, ca *testpki.CA) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN = %q, want h2", st.NegotiatedProtocol)
	}
	return st.PeerCertificates[0].SerialNumber.String()
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "CA")
	first := ca.Server(t, "localhost")
	cert, key := first.Files(t, dir, "server")
	logs := &syncBuffer{}
	r, err := New(Files{CertFile: cert, KeyFile: key}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := served(t, r, ca); got != first.Cert.SerialNumber.String() {
		t.Fatalf("serves %s, want the first certificate", got)
	}

	second := ca.Server(t, "localhost")
	second.Write(t, cert, key)
	r.ReloadAndLog(context.Background(), "SIGHUP")
	if got := served(t, r, ca); got != second.Cert.SerialNumber.String() {
		t.Fatalf("after Reload serves %s, want the second certificate", got)
	}
	if !strings.Contains(logs.String(), `"msg":"tls certificate reloaded","trigger":"SIGHUP"`) {
		t.Errorf("log: %s", logs)
	}

	// A broken file keeps the certificate serving, with an error logged.
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.ReloadAndLog(context.Background(), "SIGHUP")
	if got := served(t, r, ca); got != second.Cert.SerialNumber.String() {
		t.Fatalf("after a failed reload serves %s, want the second certificate still", got)
	}
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"tls reload failed, keeping the previous certificate"`) {
		t.Errorf("log: %s", logs)
	}
	if _, err := New(Files{CertFile: cert, KeyFile: key}, nil); err == nil {
		t.Error("New on a broken key: no error")
	}
}

// Watch reloads when the files change, and retries once the second file
// of a pair lands.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "CA")
	cert, key := ca.Server(t, "localhost").Files(t, dir, "server")
	r, err := New(Files{CertFile: cert, KeyFile: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx, 20*time.Millisecond)

	next := ca.Server(t, "localhost")
	testpki.WriteFile(t, cert, next.CertPEM) // the key does not match yet
	time.Sleep(100 * time.Millisecond)
	testpki.WriteFile(t, key, next.KeyPEM)
	deadline := time.Now().Add(5 * time.Second)
	for r.Leaf().SerialNumber.Cmp(next.Cert.SerialNumber) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not load the new pair within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With client CAs, handshakes ask for a client certificate, accept none,
// verify any given, and refuse one from another CA.
func TestClientCAs(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "CA")
	clients := testpki.NewCA(t, "client CA")
	cert, key := ca.Server(t, "localhost").Files(t, dir, "server")
	caFile := filepath.Join(dir, "clients.crt")
	testpki.WriteFile(t, caFile, clients.PEM)
	r, err := New(Files{CertFile: cert, KeyFile: key, ClientCAFile: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.RequireClientCerts() {
		t.Fatal("RequireClientCerts = false")
	}
	handshake := func(leaf *testpki.Leaf) (verified bool, err error) {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", r.Config())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan tls.ConnectionState, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			tc := c.(*tls.Conn)
			_ = tc.Handshake()
			got <- tc.ConnectionState()
		}()
		conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
		if leaf != nil {
			pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			// Sent whatever CAs the server names (Go's client would
			// otherwise keep a certificate of another CA to itself).
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), conf)
		if err != nil {
			return false, err
		}
		// TLS 1.3: the server's verdict on the client certificate arrives
		// with the first read.
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, rerr := c.Read(make([]byte, 1))
		c.Close()
		st := <-got
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return false, rerr
		}
		return len(st.VerifiedChains) > 0, nil
	}
	if v, err := handshake(nil); err != nil || v {
		t.Errorf("without a client certificate: verified %t, %v; want an unverified connection", v, err)
	}
	if v, err := handshake(clients.Client(t, "ci")); err != nil || !v {
		t.Errorf("with a client certificate: verified %t, %v", v, err)
	}
	if _, err := handshake(testpki.NewCA(t, "stranger").Client(t, "x")); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
}
