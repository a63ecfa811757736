// Package tlsreload is a server's TLS configuration that can change while
// it serves: the key pair (and client CA) are read from files at start, and
// again on Reload (SIGHUP) or when Watch sees the files change. Every new
// TLS handshake uses the newest good files (tls.Config.GetConfigForClient
// reads an atomic pointer); connections already open keep the certificate
// they were made with, so a reload drops none. Files that fail to load
// leave the previous configuration in place.
package tlsreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Files names the PEM files: CertFile and KeyFile (required), ClientCAFile
// (optional: the CAs that sign client certificates).
type Files struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

// Reloader holds the current configuration. Build it with New.
type Reloader struct {
	files Files
	log   *slog.Logger
	cur   atomic.Pointer[loaded]
}

// loaded is one good reading of the files.
type loaded struct {
	conf   *tls.Config
	leaf   *x509.Certificate
	stamps stamps // of the files when they were read
}

// New reads the files; an error means they are missing or do not parse.
func New(files Files, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Reloader{files: files, log: logger}
	l, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(l)
	return r, nil
}

// Config is the tls.Config to serve with: every handshake gets the newest
// good reading of the files. It offers HTTP/2 ("h2") then HTTP/1.1 by ALPN.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().conf, nil
		},
	}
}

// RequireClientCerts reports whether client_ca_file is set: handshakes
// then ask for a client certificate and verify the one given.
func (r *Reloader) RequireClientCerts() bool { return r.files.ClientCAFile != "" }

// Leaf is the certificate new handshakes present.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().leaf }

// Reload reads the files again. On error the previous configuration stays
// in force (and the error says why).
func (r *Reloader) Reload() error {
	l, err := r.load()
	if err != nil {
		return err
	}
	r.cur.Store(l)
	return nil
}

// Watch checks the files' modification time and size every interval until
// ctx ends, and reloads when they changed; trigger names the cause in the
// log. A failed reload is logged and retried only after the files change
// again (a half-written pair is tried once, then again when the other file
// lands).
func (r *Reloader) Watch(ctx context.Context, every time.Duration) {
	seen := r.cur.Load().stamps
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.stat()
		if now == seen {
			continue
		}
		seen = now
		r.ReloadAndLog(ctx, "file change")
	}
}

// ReloadAndLog is Reload with the outcome logged: info with the new
// certificate's subject, serial and expiry, or an error (the old
// configuration staying in force).
func (r *Reloader) ReloadAndLog(ctx context.Context, trigger string) {
	if err := r.Reload(); err != nil {
		r.log.ErrorContext(ctx, "tls reload failed, keeping the previous certificate", "trigger", trigger, "error", err.Error())
		return
	}
	leaf := r.Leaf()
	r.log.InfoContext(ctx, "tls certificate reloaded", "trigger", trigger, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
}

var nextProtos = []string{"h2", "http/1.1"}

func (r *Reloader) load() (*loaded, error) {
	st := r.stat() // before reading: a change during the read is seen next time
	pair, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: key pair %s, %s: %w", r.files.CertFile, r.files.KeyFile, err)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   nextProtos,
		Certificates: []tls.Certificate{pair},
	}
	if f := r.files.ClientCAFile; f != "" {
		pool, err := LoadCertPool(f)
		if err != nil {
			return nil, fmt.Errorf("tls: client CAs: %w", err)
		}
		// Asked for, verified when given, never required at the
		// handshake: docker and other registry clients have none. The
		// routes that need one check for it (server: /api/).
		conf.ClientAuth, conf.ClientCAs = tls.VerifyClientCertIfGiven, pool
	}
	return &loaded{conf: conf, leaf: pair.Leaf, stamps: st}, nil
}

// LoadCertPool reads a PEM file of CA certificates; a file without any is
// an error.
func LoadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%q holds no PEM certificate", path)
	}
	return pool, nil
}

// stamps identify the files' contents cheaply: modification time and size.
type stamps [3]stamp

type stamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func (r *Reloader) stat() stamps {
	var s stamps
	for i, f := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			s[i] = stamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
		}
	}
	return s
}
