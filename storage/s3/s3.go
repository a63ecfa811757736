// Package s3 is the S3 backend of storage.Store, built on minio-go: every
// object key k is the S3 object Root/k in one bucket.
//
// Requests go through two clients sharing one transport. The retrying one
// serves idempotent requests (GET, HEAD, LIST, DELETE, plain PUT, parts),
// which minio-go repeats on transient failures with a bounded backoff. The
// single-attempt one serves conditional writes and multipart completion,
// where a blind retry after a lost response would turn a win into a
// "precondition failed" (or "no such upload"); those are repeated here only
// when the server provably did not act (see retry.go).
package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/slipway/slipway/internal/bufpool"
	"github.com/slipway/slipway/storage"
)

const (
	// minPartSize is S3's floor for every part but the last.
	minPartSize     = 5 << 20
	defaultPartSize = 16 << 20
	maxPartNumber   = 10000
	defaultRetries  = 3
	defaultDial     = 5 * time.Second
	defaultResponse = time.Minute
	// pingTimeout bounds a readiness probe, whatever the caller's context.
	pingTimeout = 5 * time.Second
	// cleanupTimeout bounds best-effort aborts of failed uploads, which run
	// even when the caller's context is already cancelled.
	cleanupTimeout = 30 * time.Second
)

// Config selects the bucket and tunes the client.
type Config struct {
	// Endpoint is host[:port], or a URL whose scheme (http/https) sets Secure.
	Endpoint string
	Bucket   string
	// Region of the bucket; empty asks the bucket once at New.
	Region string
	// AccessKey and SecretKey; both empty uses the credential chain:
	// AWS_* then MINIO_* environment variables, then IAM (EC2/ECS/EKS).
	AccessKey string
	SecretKey string
	// Secure talks TLS to Endpoint.
	Secure bool
	// Root is an optional key prefix inside the bucket ("a/b").
	Root string
	// CreateBucket creates a missing bucket at New instead of refusing.
	CreateBucket bool
	// RedirectEndpoint is the public host (or URL) presigned URLs point at,
	// for clients that reach S3 by another name than the registry does.
	RedirectEndpoint string
	// PartSize is the part size of large writes, and the most one write
	// of a streamed body holds in memory (held.go): a body of unknown size
	// up to PartSize goes in one PUT, a larger one as a multipart upload.
	// Default 16 MiB (defaultPartSize), at least 5 MiB.
	PartSize int64
	// MaxRetries is how often a failed request is retried (with backoff
	// from 200ms doubling up to 1s); 0 means 3, negative means never.
	MaxRetries int
	// DialTimeout bounds connecting (default 5s); ResponseTimeout bounds
	// waiting for response headers once a request is sent (default 1m).
	DialTimeout     time.Duration
	ResponseTimeout time.Duration
	// SignPayload makes minio-go hash request bodies for SigV4 on plain
	// http endpoints (streaming signature, a SHA-256 pass over every byte).
	// Off by default: bodies go as UNSIGNED-PAYLOAD, as they always do over
	// TLS, and Slipway verifies blob digests itself.
	SignPayload bool
	// Transport replaces the HTTP transport (and its timeouts), e.g. to
	// count requests in benchmarks.
	Transport http.RoundTripper
}

// Store is a storage.Store on one S3 bucket.
type Store struct {
	client   *minio.Client // retries transient failures: idempotent requests
	core     minio.Core    // the same client, for the low-level multipart calls
	once     minio.Core    // single attempt: conditional writes, completes
	presign  *minio.Client // signs URLs for RedirectEndpoint; never sends
	bucket   string
	root     string // "" or "prefix/"
	partSize int64
	copyMax  int64 // the largest object CopyFrom copies with one CopyObject
	retries  int
	unsigned bool          // minio-go DisableContentSha256
	chunks   *bufpool.Pool // held.go's chunks
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Presigner = (*Store)(nil)
)

// New connects to the bucket, creating it when cfg.CreateBucket is set,
// and fails if it is missing or unreachable (the latter wraps
// storage.ErrUnavailable), or if the endpoint does not honour conditional
// writes (checkConditional: four PUTs and a DELETE of a probe object).
func New(ctx context.Context, cfg Config) (*Store, error) {
	return connect(ctx, cfg, false)
}

// NewReadOnly opens the existing bucket for reading only: it writes
// nothing there (no conditional-write probe, no bucket creation:
// cfg.CreateBucket is an error), checks with reads alone that the bucket
// exists and answers these credentials (HEAD bucket, and its location
// when cfg.Region is empty), and refuses every write with
// storage.ErrReadOnly (storage.ReadOnly, which still offers Presigner and
// Locator). It is how Slipway reads another program's bucket, such as the
// stock registry's storage during an import.
func NewReadOnly(ctx context.Context, cfg Config) (storage.Store, error) {
	if cfg.CreateBucket {
		return nil, fmt.Errorf("s3: bucket %q opened read-only: create_bucket must be off", cfg.Bucket)
	}
	s, err := connect(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	return storage.ReadOnly(s), nil
}

// connect builds the store; a read-only one writes nothing while doing so.
func connect(ctx context.Context, cfg Config, readOnly bool) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket configured")
	}
	host, secure, err := endpoint(cfg.Endpoint, cfg.Secure)
	if err != nil {
		return nil, err
	}
	s := &Store{
		bucket:   cfg.Bucket,
		partSize: cfg.PartSize,
		copyMax:  maxCopyObject,
		retries:  cfg.MaxRetries,
		unsigned: !cfg.SignPayload,
	}
	if s.partSize == 0 {
		s.partSize = defaultPartSize
	}
	if s.partSize < minPartSize || s.partSize > 5<<30 {
		return nil, fmt.Errorf("s3: part size %d not in 5 MiB..5 GiB", s.partSize)
	}
	switch {
	case s.retries == 0:
		s.retries = defaultRetries
	case s.retries < 0:
		s.retries = 0
	}
	if s.root, err = rootPrefix(cfg.Root); err != nil {
		return nil, err
	}
	s.chunks = bufpool.New(chunkSize, keptChunks)

	tr := cfg.Transport
	if tr == nil {
		if tr, err = transport(secure, cfg); err != nil {
			return nil, err
		}
	}
	creds := credentialsFor(cfg, tr)
	opts := func(secure bool, region string, attempts int) *minio.Options {
		return &minio.Options{Creds: creds, Secure: secure, Region: region, Transport: tr, MaxRetries: attempts}
	}
	if s.client, err = minio.New(host, opts(secure, cfg.Region, s.retries+1)); err != nil {
		return nil, fmt.Errorf("s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	s.core = minio.Core{Client: s.client}
	if err := s.checkBucket(ctx, cfg.CreateBucket, cfg.Region); err != nil {
		return nil, err
	}
	// The other clients need the region up front: minio-go would otherwise
	// ask the bucket for it once per client, and presigning must stay offline.
	region := cfg.Region
	if region == "" {
		if region, err = s.client.GetBucketLocation(ctx, s.bucket); err != nil {
			return nil, s.fail(ctx, "locate bucket", "", err)
		}
	}
	once, err := minio.New(host, opts(secure, region, 1))
	if err != nil {
		return nil, fmt.Errorf("s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	s.once = minio.Core{Client: once}
	phost, psecure := host, secure
	if cfg.RedirectEndpoint != "" {
		if phost, psecure, err = endpoint(cfg.RedirectEndpoint, secure); err != nil {
			return nil, err
		}
	}
	if s.presign, err = minio.New(phost, opts(psecure, region, 1)); err != nil {
		return nil, fmt.Errorf("s3: redirect endpoint %q: %w", cfg.RedirectEndpoint, err)
	}
	if readOnly {
		return s, nil
	}
	if err := s.checkConditional(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// checkBucket makes sure the bucket exists, creating it if asked to.
func (s *Store) checkBucket(ctx context.Context, create bool, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.fail(ctx, "check bucket", "", err)
	}
	if ok {
		return nil
	}
	if !create {
		return fmt.Errorf("s3: bucket %q does not exist (set storage.s3.create_bucket: true to create it)", s.bucket)
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	if minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
		return nil // another replica created it meanwhile
	}
	if err != nil {
		return s.fail(ctx, "create bucket", "", err)
	}
	return nil
}

// Ping checks that the bucket answers, within pingTimeout and in a single
// attempt: a readiness probe should report, not wait out retries.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ok, err := s.once.BucketExists(ctx, s.bucket)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("s3: ping bucket %q at %s: no answer within %v: %w", s.bucket, s.client.EndpointURL().Host, pingTimeout, storage.ErrUnavailable)
		}
		return fmt.Errorf("s3: ping bucket %q at %s: %w: %w", s.bucket, s.client.EndpointURL().Host, storage.ErrUnavailable, err)
	}
	if !ok {
		return fmt.Errorf("s3: ping: bucket %q does not exist: %w", s.bucket, storage.ErrUnavailable)
	}
	return nil
}

// object maps a key to its S3 object name, rejecting keys that break the
// key rules.
func (s *Store) object(op, key string) (string, error) {
	if !storage.ValidKey(key) {
		return "", fmt.Errorf("s3: %s %q: %w", op, key, storage.ErrInvalidKey)
	}
	return s.root + key, nil
}

// rootPrefix turns cfg.Root into "" or "a/b/".
func rootPrefix(root string) (string, error) {
	root = strings.Trim(root, "/")
	if root == "" {
		return "", nil
	}
	if !storage.ValidKey(root) {
		return "", fmt.Errorf("s3: root %q: %w", root, storage.ErrInvalidKey)
	}
	return root + "/", nil
}

// EndpointHost is the host[:port] requests to endpoint ("host:port" or
// "scheme://host:port") go to, lower-cased, as Locate reports it; "" for
// an endpoint New would refuse.
func EndpointHost(s string) string {
	h, _, err := endpoint(strings.TrimSpace(s), false)
	if err != nil {
		return ""
	}
	return strings.ToLower(h)
}

// endpoint splits "host:port" or "scheme://host:port" into minio-go's
// host and TLS flag.
func endpoint(s string, secure bool) (string, bool, error) {
	if !strings.Contains(s, "://") {
		if s == "" || strings.ContainsAny(s, "/?#") {
			return "", false, fmt.Errorf("s3: endpoint %q: want host[:port] or http(s)://host[:port]", s)
		}
		return s, secure, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false, fmt.Errorf("s3: endpoint %q: want host[:port] or http(s)://host[:port]", s)
	}
	return u.Host, u.Scheme == "https", nil
}

// transport is minio-go's default with bounded connects and more idle
// connections per host: a registry talks to one S3 endpoint, in parallel.
func transport(secure bool, cfg Config) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = defaultDial
	}
	tr.DialContext = (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = cfg.ResponseTimeout
	if tr.ResponseHeaderTimeout <= 0 {
		tr.ResponseHeaderTimeout = defaultResponse
	}
	tr.MaxIdleConnsPerHost = 128
	return tr, nil
}

// credentialsFor returns static keys, or the environment/IAM chain when
// none are configured. IAM requests use the same transport.
func credentialsFor(cfg Config, tr http.RoundTripper) *credentials.Credentials {
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		return credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.IAM{Client: &http.Client{Transport: tr}},
	})
}
