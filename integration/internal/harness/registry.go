package harness

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options selects how StartOpts runs the registry.
type Options struct {
	// S3 runs the registry on a MinIO bucket instead of a folder.
	S3 *S3
	// NoPublicURL leaves http.public_url empty, so Slipway's Location
	// headers are relative paths and its token realm is built from each
	// request's Host (which keeps a client that talks through a proxy on
	// the proxy).
	NoPublicURL bool
	// Lockout sets auth.lockout (nil: Slipway's defaults).
	Lockout *Lockout
	// ExtraConfig is appended to Slipway's YAML configuration (top-level
	// sections the harness does not write itself, such as promotion).
	ExtraConfig string
	// HTTPConfig is appended to Slipway's http section: lines indented
	// by two spaces, such as "  body_timeout: 2s\n".
	HTTPConfig string
	// AuthConfig is appended to Slipway's auth section: lines indented by
	// two spaces, such as "  oidc:\n    trust: ...\n".
	AuthConfig string
	// TLSRootCAs, when set, says the registry serves HTTPS (HTTPConfig
	// holds its tls section) with a certificate these CAs sign, for
	// 127.0.0.1: URL is then https, and the harness's own probes verify
	// with them.
	TLSRootCAs *x509.CertPool
	// PublicURL sets http.public_url ("": the registry's own URL): the
	// load balancer's URL for replicas behind one.
	PublicURL string
	// DrainDelay is Slipway's http.drain_delay. The harness writes 0 (a
	// test's SIGTERM stop is then as quick as before the setting existed)
	// unless a test behind a load balancer asks for more.
	DrainDelay time.Duration
}

// S3 is the bucket a registry stores its state in.
type S3 struct {
	// MinIO serves the bucket; nil means SharedMinIO, or SharedVersityGW
	// with VersityGW set.
	MinIO *MinIO
	// VersityGW picks the shared versitygw (posix backend) over the shared
	// MinIO when MinIO is nil: the second S3 implementation.
	VersityGW bool
	// Bucket is the bucket's name; "" creates a fresh one (MinIO.NewBucket).
	Bucket string
	// Redirect answers blob GETs with a 307 to a presigned MinIO URL, on
	// RedirectHost (storage.s3.redirect_endpoint).
	Redirect bool
	// CreateBucket sets storage.s3.create_bucket.
	CreateBucket bool
	// Root is the key prefix inside the bucket (storage.s3.root).
	Root string
	// PartSize is storage.s3.part_size ("" for Slipway's default).
	PartSize string
	// RedirectMinSize is storage.s3.redirect_min_size ("" for Slipway's
	// default, 1 MiB: smaller blobs are proxied).
	RedirectMinSize string
}

// RedirectHost is the host presigned URLs name with Redirect on:
// localhost:PORT, the same MinIO under a host name other than the
// registry's 127.0.0.1. Go's http.Client keeps the Authorization header
// when it follows a redirect to the same host name (ports aside), and
// clients that set it on the request itself (the conformance suite) would
// send their registry token along to MinIO, which refuses a presigned
// request that also carries an Authorization header (400 InvalidRequest,
// "request has multiple authentication types"; S3 does the same). A
// registry and its bucket's endpoint are different hosts in production.
func (s *S3) RedirectHost() string {
	_, port, _ := net.SplitHostPort(s.MinIO.Addr)
	return "localhost:" + port
}

// Registry is one running registry process on 127.0.0.1.
type Registry struct {
	t           testing.TB
	name        string // for log file names
	Host        string // 127.0.0.1:PORT, what clients put in references
	Root        string // filesystem storage root, kept across Kill/Restart ("" on S3)
	S3          *S3    // the bucket on S3 (MinIO and Bucket filled in), else nil
	noPublicURL bool
	publicURL   string // http.public_url when not the registry's own URL
	LogPath     string // server output, appended across restarts
	cfgPath     string
	secret      string // http.secret, shared with replicas
	// writeDelay is Slipway's storage.test_write_delay (crash tests).
	writeDelay time.Duration
	// signingKey and verificationKeys are auth.signing_key and
	// auth.verification_keys; replicas share them.
	signingKey       string
	verificationKeys []string
	lockout          *Lockout
	extraConfig      string
	httpConfig       string
	authExtra        string
	tlsRoots         *x509.CertPool // nil: plain HTTP
	drainDelay       time.Duration

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error
	starts  int
}

// Start runs a fresh registry with an empty storage root on a free port,
// waits until it answers, and stops it (SIGTERM) when the test ends. If the
// test failed, the tail of the server's log is shown.
func Start(t testing.TB) *Registry {
	t.Helper()
	return StartOpts(t, Options{})
}

// StartOpts is Start with a choice of storage: an empty folder, or a bucket
// (a fresh one on the shared MinIO unless opts.S3 names one).
func StartOpts(t testing.TB, opts Options) *Registry {
	t.Helper()
	if err := makeAccounts(); err != nil {
		t.Fatalf("making the test accounts: %v", err)
	}
	r := &Registry{t: t, name: Sanitize(t.Name()), secret: randomHex(16), noPublicURL: opts.NoPublicURL,
		signingKey: defaultSigningKey(t), lockout: opts.Lockout, extraConfig: opts.ExtraConfig, httpConfig: opts.HTTPConfig, authExtra: opts.AuthConfig,
		tlsRoots: opts.TLSRootCAs, drainDelay: opts.DrainDelay, publicURL: opts.PublicURL}
	if opts.S3 != nil {
		s := *opts.S3
		switch {
		case s.MinIO != nil:
		case s.VersityGW:
			s.MinIO = SharedVersityGW(t)
		default:
			s.MinIO = SharedMinIO(t)
		}
		if s.Bucket == "" {
			s.Bucket = s.MinIO.NewBucket(t)
		}
		r.S3 = &s
	} else {
		r.Root = filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(r.Root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.launch()
	return r
}

// StartReplica starts a second registry process on the same storage (the
// same bucket, or the same folder), with its own port and log, stopped when
// the test ends: two replicas behind one load balancer, as it were.
func (r *Registry) StartReplica(t testing.TB) *Registry {
	t.Helper()
	return r.StartReplicaOn(t, nil)
}

// StartReplicaOn is StartReplica with the bucket reached through another
// server of the same store (a node of a distributed MinIO); nil: r's.
func (r *Registry) StartReplicaOn(t testing.TB, m *MinIO) *Registry {
	t.Helper()
	r2 := &Registry{t: t, name: r.name + "-replica", Root: r.Root, secret: r.secret, writeDelay: r.writeDelay, noPublicURL: r.noPublicURL, publicURL: r.publicURL,
		signingKey: r.signingKey, verificationKeys: r.verificationKeys, lockout: r.lockout, extraConfig: r.extraConfig, httpConfig: r.httpConfig, authExtra: r.authExtra, drainDelay: r.drainDelay,
		tlsRoots: r.tlsRoots}
	if r.S3 != nil {
		s := *r.S3
		if m != nil {
			s.MinIO = m
		}
		r2.S3 = &s
	}
	r2.launch()
	return r2
}

// launch prepares the log and config of a new Registry and starts it on a
// free port.
func (r *Registry) launch() {
	t := r.t
	t.Helper()
	f, err := os.CreateTemp(logDir, r.name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	r.LogPath = f.Name()
	r.cfgPath = filepath.Join(t.TempDir(), "config.yml")

	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("stopping %s: %v", kind, err)
		}
		if t.Failed() {
			t.Logf("%s log (%s), last lines:\n%s", kind, r.LogPath, tail(r.LogPath, 40))
		}
	})

	// A free port can be taken between our probe and the server's bind:
	// retry with another one if the server says so.
	for attempt := 0; ; attempt++ {
		r.Host = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		if err := r.writeConfig(); err != nil {
			t.Fatal(err)
		}
		err := r.start()
		if err == nil {
			return
		}
		if attempt < 3 && strings.Contains(tail(r.LogPath, 20), "address already in use") {
			continue
		}
		t.Fatalf("%v\n%s log (%s):\n%s", err, kind, r.LogPath, tail(r.LogPath, 80))
	}
}

func (r *Registry) storageDesc() string {
	if s := r.S3; s != nil {
		return fmt.Sprintf("bucket %s on %s %s (redirect %t)", s.Bucket, s.MinIO.name(), s.MinIO.Addr, s.Redirect)
	}
	return "root " + r.Root
}

// URL is the registry's base URL, http://127.0.0.1:PORT (https with
// Options.TLSRootCAs).
func (r *Registry) URL() string {
	if r.tlsRoots != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// ConfigPath is the registry's configuration file: what `slipway gc
// --config` and other one-off commands read to reach the same storage.
func (r *Registry) ConfigPath() string { return r.cfgPath }

// Ref is a reference on this registry: Ref("it/app:1") = "127.0.0.1:PORT/it/app:1".
func (r *Registry) Ref(repoAndTag string) string { return r.Host + "/" + repoAndTag }
