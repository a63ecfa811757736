// Package config holds Slipway's one configuration struct: loaded from YAML,
// overridden by SLIPWAY_* environment variables, validated before anything
// starts. Every problem is reported with the key that holds it and where that
// value came from (file:line, or the environment variable).
//
// Adding a section (storage.s3, auth, stages, ...) is adding a typed field
// with a yaml tag, its default in Default and its checks in problems: the
// loader, the line lookup and the env overrides work from the struct's tags.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration.
type Config struct {
	HTTP    HTTP    `yaml:"http"`
	Storage Storage `yaml:"storage"`
	Uploads Uploads `yaml:"uploads"`
	Log     Log     `yaml:"log"`
	Auth    Auth    `yaml:"auth"`
	// Stages are the ordered repository prefixes an image is promoted
	// through (staging/ -> production/); see stages.go.
	Stages []Stage `yaml:"stages"`
	// Promotion configures the promotion service (webhooks).
	Promotion Promotion `yaml:"promotion"`
	// Admin configures the web pages.
	Admin Admin `yaml:"admin"`
	// Retention deletes old tags by rule (retention.go).
	Retention Retention `yaml:"retention"`
	// GC configures the garbage collector; see gc.go.
	GC GC `yaml:"gc"`
}

// Uploads configures the housekeeping of blob upload sessions.
type Uploads struct {
	// PurgeAfter: a session untouched this long is forgotten (its client
	// has gone), and incomplete multipart uploads this old are aborted.
	PurgeAfter time.Duration `yaml:"purge_after"`
	// PurgeInterval: how often each replica looks for such sessions.
	PurgeInterval time.Duration `yaml:"purge_interval"`
	// MaxOpenPerAccount bounds the upload sessions holding data that one
	// account may have unfinished through each replica (429 beyond); 0:
	// no bound. Per replica: N replicas allow N times as many.
	MaxOpenPerAccount int `yaml:"max_open_per_account"`
	// SessionRatePerAccount bounds the new upload sessions one account
	// may start through each replica, per second, with bursts of
	// SessionBurstPerAccount (429 beyond); 0: no bound.
	SessionRatePerAccount  int `yaml:"session_rate_per_account"`
	SessionBurstPerAccount int `yaml:"session_burst_per_account"`
}

// Upload bounds by default: far above what a CI account does (docker
// pushes 3-5 layers of an image at once; a busy account many images), low
// enough that one account cannot keep thousands of sessions' data.
const (
	defaultMaxOpenPerAccount      = 500
	defaultSessionRatePerAccount  = 100
	defaultSessionBurstPerAccount = 1000
)

// HTTP configures the listener every API shares.
type HTTP struct {
	// Addr is the host:port to listen on (":5000", "127.0.0.1:0").
	Addr string `yaml:"addr"`
	// PublicURL is the externally visible base URL, the prefix of Location
	// headers and of the token realm. Empty: Location headers are relative
	// paths (clients resolve them against the URL they called) and the
	// token realm is built from each request's scheme and Host.
	PublicURL string `yaml:"public_url"`
	// Secret is shared by all replicas to sign state they hand to clients.
	Secret string `yaml:"secret"`
	// ShutdownTimeout bounds how long in-flight requests may run after
	// SIGTERM/SIGINT.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long the server keeps accepting new requests after
	// SIGTERM/SIGINT while /readyz already answers 503, before it stops
	// listening: long enough for a load balancer's health checks (or
	// Kubernetes' endpoint removal) to take the replica out of rotation,
	// so no client is sent to a closed port. 0 stops listening at once.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// BodyTimeout bounds how long the body of a request that is not a
	// blob upload (tokens, the API, admin forms, manifests) may take to
	// arrive: a client trickling bytes cannot hold a connection longer.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// UploadStallTimeout guards blob upload bodies, which have no overall
	// bound: one is cut off once the server has waited this long in all
	// for the next few KiB of it.
	UploadStallTimeout time.Duration `yaml:"upload_stall_timeout"`
	// TLS, when cert_file is set, serves HTTPS (and HTTP/2) on Addr; see
	// tls.go.
	TLS TLS `yaml:"tls"`
	// TrustedProxies are the CIDRs (or single addresses) of the proxies
	// whose X-Forwarded-For/-Proto/-Host headers are believed; see tls.go.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Storage selects the object-store backend: the S3 bucket when the s3
// section is present, else the filesystem folder.
type Storage struct {
	Filesystem Filesystem `yaml:"filesystem"`
	// S3, when present, selects an S3-compatible bucket instead of the
	// filesystem.
	S3 *S3 `yaml:"s3"`
	// TestWriteDelay makes every storage write wait this long first. It
	// exists for crash tests (a kill -9 then lands inside a push); never
	// set it in production.
	TestWriteDelay time.Duration `yaml:"test_write_delay"`
}

// Filesystem is the local-folder backend.
type Filesystem struct {
	Root string `yaml:"root"`
}

// S3 is the S3-compatible backend (MinIO, AWS S3, Ceph RGW, R2, ...).
type S3 struct {
	Endpoint string `yaml:"endpoint"` // host:port, or an http(s) URL
	Bucket   string `yaml:"bucket"`
	Region   string `yaml:"region"`
	// AccessKey and SecretKey; both empty: the AWS_*/MINIO_* environment
	// variables, then the instance's IAM role.
	AccessKey    string `yaml:"access_key"`
	SecretKey    string `yaml:"secret_key"`
	Secure       bool   `yaml:"secure"`        // TLS to the endpoint
	Root         string `yaml:"root"`          // optional key prefix inside the bucket
	CreateBucket bool   `yaml:"create_bucket"` // create it at start instead of refusing to start
	// Redirect answers blob GETs with a presigned URL (307) so bytes flow
	// from the bucket to the client directly. Off by default: blobs are
	// served through Slipway.
	Redirect         bool   `yaml:"redirect"`
	RedirectEndpoint string `yaml:"redirect_endpoint"` // public host for presigned URLs
	// RedirectExpiry is the life of a presigned URL, at most 168h; 0: 20
	// minutes (registry.Options.RedirectExpiry).
	RedirectExpiry time.Duration `yaml:"redirect_expiry"`
	// RedirectMinSize: blobs smaller than this are served through Slipway
	// even with redirect on ("1MiB" by default; "0": redirect every blob).
	// A redirect costs the client a second request, to another host, which
	// for a small blob takes longer than the bytes (BENCHMARKS.md, on S3).
	RedirectMinSize string `yaml:"redirect_min_size"`
	// PartSize of multipart writes, and the memory one streaming request
	// may buffer: "16MiB" (also what empty means), from 5MiB to 5GiB.
	PartSize string `yaml:"part_size"`
}

// defaultRedirectMinSize: see S3.RedirectMinSize.
const defaultRedirectMinSize = 1 << 20

// RedirectMinSizeBytes is redirect_min_size in bytes: 1 MiB when unset, 0
// for "0".
func (s S3) RedirectMinSizeBytes() int64 {
	if s.RedirectMinSize == "" {
		return defaultRedirectMinSize
	}
	n, _ := parseSize(s.RedirectMinSize)
	return n
}

// PartSizeBytes is part_size in bytes (0 when unset or invalid).
func (s S3) PartSizeBytes() int64 {
	n, _ := parseSize(s.PartSize)
	return n
}

// parseSize reads "16MiB", "5MB", "1048576".
func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n * mult, true
}

// Log configures the JSON logger.
type Log struct {
	Level string `yaml:"level"` // debug|info|warn|error
}

// Default is the built-in configuration `slipway serve` uses without
// --config, and the base every file is laid over (keys a file omits keep
// these values).
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:               ":5000",
			ShutdownTimeout:    30 * time.Second,
			DrainDelay:         5 * time.Second,
			BodyTimeout:        30 * time.Second,
			UploadStallTimeout: time.Minute,
		},
		Storage: Storage{Filesystem: Filesystem{Root: "./data"}},
		Uploads: defaultUploads(),
		Log:     Log{Level: "info"},
		Auth:    defaultAuth(),
		Stages:  defaultStages(),
		Admin:   Admin{SessionTTL: 12 * time.Hour},
		GC:      defaultGC(),
	}
}

func defaultUploads() Uploads {
	return Uploads{PurgeAfter: 24 * time.Hour, PurgeInterval: time.Hour,
		MaxOpenPerAccount: defaultMaxOpenPerAccount, SessionRatePerAccount: defaultSessionRatePerAccount,
		SessionBurstPerAccount: defaultSessionBurstPerAccount}
}

// minSecretLen keeps a configured secret out of brute-force reach.
const minSecretLen = 16

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// SlogLevel is the validated level as slog's type (info if unknown).
func (l Log) SlogLevel() slog.Level {
	return logLevels[l.Level] // the zero value is slog.LevelInfo
}

// problem is one invalid value: the dotted key that holds it and what is
// wrong. The loader adds where the value came from.
type problem struct {
	key string
	msg string
}

// Validate checks every value. Errors name the key but not the source; Load
// reports the same checks with file:line or the environment variable.
func (c Config) Validate() error {
	return joinProblems(c.problems(), func(string) string { return "" })
}

func (c Config) problems() []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	if msg := checkAddr(c.HTTP.Addr); msg != "" {
		add("http.addr", "%s", msg)
	}
	if msg := checkPublicURL(c.HTTP.PublicURL); msg != "" {
		add("http.public_url", "%s", msg)
	}
	if s := c.HTTP.Secret; s != "" && len(s) < minSecretLen {
		add("http.secret", "must be at least %d characters (or empty)", minSecretLen)
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		add("http.shutdown_timeout", "must be a positive duration like \"30s\", got %q", c.HTTP.ShutdownTimeout.String())
	}
	if c.HTTP.DrainDelay < 0 {
		add("http.drain_delay", "must be a duration of 0 or more like \"5s\", got %q", c.HTTP.DrainDelay.String())
	}
	if c.HTTP.BodyTimeout <= 0 {
		add("http.body_timeout", "must be a positive duration like \"30s\", got %q", c.HTTP.BodyTimeout.String())
	}
	if c.HTTP.UploadStallTimeout <= 0 {
		add("http.upload_stall_timeout", "must be a positive duration like \"1m\", got %q", c.HTTP.UploadStallTimeout.String())
	}
	if c.Storage.S3 != nil {
		s3 := c.Storage.S3
		if s3.Endpoint == "" {
			add("storage.s3.endpoint", "must not be empty (host:port or an http(s) URL)")
		}
		if s3.Bucket == "" {
			add("storage.s3.bucket", "must not be empty")
		}
		if (s3.AccessKey == "") != (s3.SecretKey == "") {
			add("storage.s3.secret_key", "access_key and secret_key go together (or both empty for the credential chain)")
		}
		if _, ok := parseSize(s3.RedirectMinSize); s3.RedirectMinSize != "" && !ok && strings.TrimSpace(s3.RedirectMinSize) != "0" {
			add("storage.s3.redirect_min_size", "must be a size like \"1MiB\", or 0 to redirect every blob, got %q", s3.RedirectMinSize)
		}
		if n, ok := parseSize(s3.PartSize); s3.PartSize != "" && (!ok || n < 5<<20 || n > 5<<30) {
			add("storage.s3.part_size", "must be a size from 5MiB to 5GiB like \"16MiB\", got %q", s3.PartSize)
		}
		if s3.RedirectExpiry < 0 || s3.RedirectExpiry > 7*24*time.Hour {
			add("storage.s3.redirect_expiry", "must be between 0s and 168h, got %s", s3.RedirectExpiry)
		}
	} else if strings.TrimSpace(c.Storage.Filesystem.Root) == "" {
		add("storage.filesystem.root", "must not be empty")
	}
	if c.Uploads.PurgeAfter < time.Hour {
		add("uploads.purge_after", "must be at least 1h (clients pause between chunks), got %s", c.Uploads.PurgeAfter)
	}
	if c.Uploads.PurgeInterval < time.Minute {
		add("uploads.purge_interval", "must be at least 1m, got %s", c.Uploads.PurgeInterval)
	}
	if c.Uploads.MaxOpenPerAccount < 0 {
		add("uploads.max_open_per_account", "must be 0 (no bound) or more, got %d", c.Uploads.MaxOpenPerAccount)
	}
	if c.Uploads.SessionRatePerAccount < 0 {
		add("uploads.session_rate_per_account", "must be 0 (no bound) or more, got %d", c.Uploads.SessionRatePerAccount)
	}
	if c.Uploads.SessionRatePerAccount > 0 && c.Uploads.SessionBurstPerAccount < 1 {
		add("uploads.session_burst_per_account", "must be at least 1 when uploads.session_rate_per_account is set, got %d", c.Uploads.SessionBurstPerAccount)
	}
	if c.Storage.TestWriteDelay < 0 {
		add("storage.test_write_delay", "must not be negative")
	}
	if _, ok := logLevels[c.Log.Level]; !ok {
		add("log.level", "must be one of debug|info|warn|error, got %q", c.Log.Level)
	}
	ps = append(ps, c.HTTP.TLS.problems()...)
	ps = append(ps, trustedProxyProblems(c.HTTP.TrustedProxies)...)
	ps = append(ps, c.Auth.problems()...)
	ps = append(ps, oidcProblems(c.Auth.OIDC, c.Auth.Users, c.Stages)...)
	ps = append(ps, stageProblems(c.Stages)...)
	ps = append(ps, c.Promotion.problems()...)
	ps = append(ps, c.Admin.problems(c.HTTP.PublicURL)...)
	ps = append(ps, retentionProblems(c.Retention, c.Stages)...)
	ps = append(ps, c.GC.problems()...)
	return ps
}

func checkAddr(addr string) string {
	if addr == "" {
		return "must not be empty (host:port, e.g. \":5000\")"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("must be host:port, got %q", addr)
	}
	// A numeric port catches typos that net.Listen would take as a service name.
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("port must be a number 0-65535, got %q", port)
	}
	return ""
}

func checkPublicURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("must be an absolute http(s) URL like \"https://registry.example.com\", got %q", s)
	}
	// Clients append /v2/... and /auth/... to it: anything else would break them.
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fmt.Sprintf("must be scheme://host[:port] only (no path, user, query or fragment), got %q", s)
	}
	return ""
}
