package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default() is invalid: %v", err)
	}
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("Load(\"\") = %+v, want Default()", cfg)
	}
	if cfg.HTTP.Addr != ":5000" || cfg.Storage.Filesystem.Root != "./data" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	data := `# comment
http:
  addr: "127.0.0.1:5001"
  public_url: "http://127.0.0.1:5001/"
  secret: "shared-by-all-replicas"
  shutdown_timeout: 1m30s
  drain_delay: 3s
  body_timeout: 10s
storage:
  filesystem:
    root: /var/lib/slipway
log:
  level: debug
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTP: HTTP{
			Addr:               "127.0.0.1:5001",
			PublicURL:          "http://127.0.0.1:5001", // trailing slash trimmed
			Secret:             "shared-by-all-replicas",
			ShutdownTimeout:    90 * time.Second,
			DrainDelay:         3 * time.Second,
			BodyTimeout:        10 * time.Second,
			UploadStallTimeout: Default().HTTP.UploadStallTimeout,
		},
		Storage: Storage{Filesystem: Filesystem{Root: "/var/lib/slipway"}},
		Uploads: Default().Uploads,
		Log:     Log{Level: "debug"},
		Auth:    Default().Auth,
		Stages:  Default().Stages,
		Admin:   Default().Admin,
		GC:      Default().GC,
	}
	want.Auth.SigningKey = "/var/lib/slipway/keys/token.pem" // follows the root
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestPartialFileKeepsDefaults(t *testing.T) {
	cfg, err := Parse("c.yml", []byte("log:\n  level: warn\nhttp:\n  addr:\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log.Level = "warn"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yml") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	file := "http:\n  addr: \":6000\"\nlog:\n  level: info\n"
	env := envMap(map[string]string{
		"SLIPWAY_HTTP_ADDR":                 "127.0.0.1:7000",
		"SLIPWAY_HTTP_PUBLIC_URL":           "https://registry.example.com",
		"SLIPWAY_HTTP_SECRET":               "0123456789abcdef0123",
		"SLIPWAY_HTTP_SHUTDOWN_TIMEOUT":     "5s",
		"SLIPWAY_HTTP_DRAIN_DELAY":          "0s",
		"SLIPWAY_HTTP_UPLOAD_STALL_TIMEOUT": "2m",
		"SLIPWAY_STORAGE_FILESYSTEM_ROOT":   "/srv/data",
		"SLIPWAY_LOG_LEVEL":                 "error",
	})
	cfg, err := Parse("c.yml", []byte(file), env)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTP: HTTP{
			Addr:               "127.0.0.1:7000",
			PublicURL:          "https://registry.example.com",
			Secret:             "0123456789abcdef0123",
			ShutdownTimeout:    5 * time.Second,
			DrainDelay:         0,
			BodyTimeout:        Default().HTTP.BodyTimeout,
			UploadStallTimeout: 2 * time.Minute,
		},
		Storage: Storage{Filesystem: Filesystem{Root: "/srv/data"}},
		Uploads: Default().Uploads,
		Log:     Log{Level: "error"},
		Auth:    Default().Auth,
		Stages:  Default().Stages,
		Admin:   Default().Admin,
		GC:      Default().GC,
	}
	want.Auth.SigningKey = "/srv/data/keys/token.pem"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestEmptyEnvIsUnset(t *testing.T) {
	cfg, err := Parse("c.yml", []byte("http:\n  addr: \":6000\"\n"), envMap(map[string]string{"SLIPWAY_HTTP_ADDR": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":6000" {
		t.Fatalf("addr = %q, want the file's", cfg.HTTP.Addr)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("storage.filesystem.root"); got != "SLIPWAY_STORAGE_FILESYSTEM_ROOT" {
		t.Fatal(got)
	}
}

// Each bad value must be reported with its key and its line (or variable).
func TestErrorsNameKeyAndLine(t *testing.T) {
	const base = "http:\n  addr: \":5000\"\n" // lines 1-2
	cases := []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"bad level", base + "log:\n  level: loud\n", nil,
			`config.yml:4: log.level: must be one of debug|info|warn|error, got "loud"`},
		{"bad duration", base + "  shutdown_timeout: soon\n", nil,
			`config.yml:3: http.shutdown_timeout: must be a duration like "30s" or "1m30s", got "soon"`},
		{"duration without unit", base + "  shutdown_timeout: 30\n", nil,
			`config.yml:3: http.shutdown_timeout: must be a duration`},
		{"zero duration", base + "  shutdown_timeout: 0s\n", nil,
			`config.yml:3: http.shutdown_timeout: must be a positive duration`},
		{"negative drain delay", base + "  drain_delay: -1s\n", nil,
			`config.yml:3: http.drain_delay: must be a duration of 0 or more`},
		{"zero body timeout", base + "  body_timeout: 0s\n", nil,
			`config.yml:3: http.body_timeout: must be a positive duration`},
		{"negative upload stall timeout", base + "  upload_stall_timeout: -1m\n", nil,
			`config.yml:3: http.upload_stall_timeout: must be a positive duration`},
		{"empty addr", "log:\n  level: info\nhttp:\n  addr: \"\"\n", nil,
			`config.yml:4: http.addr: must not be empty`},
		{"addr without port", "http:\n  addr: localhost\n", nil,
			`config.yml:2: http.addr: must be host:port, got "localhost"`},
		{"addr bad port", "http:\n  addr: \":http5000\"\n", nil,
			`config.yml:2: http.addr: port must be a number`},
		{"bad url", base + "  public_url: \"registry.example.com\"\n", nil,
			`config.yml:3: http.public_url: must be an absolute http(s) URL`},
		{"url with path", base + "  public_url: \"https://r.example.com/v2\"\n", nil,
			`config.yml:3: http.public_url: must be scheme://host[:port] only`},
		{"short secret", base + "  secret: abc\n", nil,
			`config.yml:3: http.secret: must be at least 16 characters`},
		{"empty root", "storage:\n  filesystem:\n    root: \"\"\n", nil,
			`config.yml:3: storage.filesystem.root: must not be empty`},
		{"unknown key", base + "  adress: x\n", nil,
			`config.yml:3: http.adress: unknown key`},
		{"unknown section", base + "\nstorag:\n  x: 1\n", nil,
			`config.yml:4: storag: unknown key`},
		{"mapping for scalar", base + "log:\n  level:\n    x: 1\n", nil,
			`config.yml:5: log.level: must be a single value, got a mapping`},
		{"scalar for section", "http: yes\n", nil,
			`config.yml:1: http: must be a mapping of keys`},
		{"syntax error", "http:\n  addr: [\n", nil,
			`config.yml:`},
		{"env bad level", base, map[string]string{"SLIPWAY_LOG_LEVEL": "loud"},
			`env SLIPWAY_LOG_LEVEL: log.level: must be one of debug|info|warn|error, got "loud"`},
		{"env bad duration", base, map[string]string{"SLIPWAY_HTTP_SHUTDOWN_TIMEOUT": "soon"},
			`env SLIPWAY_HTTP_SHUTDOWN_TIMEOUT: http.shutdown_timeout: must be a duration like "30s" or "1m30s", got "soon"`},
		{"env bad url", base, map[string]string{"SLIPWAY_HTTP_PUBLIC_URL": "ftp://x"},
			`env SLIPWAY_HTTP_PUBLIC_URL: http.public_url: must be an absolute http(s) URL`},
		{"two documents", base + "---\nlog:\n  level: info\n", nil,
			`only one YAML document`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.yml", []byte(tc.file), envMap(tc.env))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

func TestAllProblemsReported(t *testing.T) {
	file := "http:\n  addr: \"\"\nlog:\n  level: loud\n"
	_, err := Parse("c.yml", []byte(file), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"c.yml:2: http.addr", "c.yml:4: log.level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestValidateWithoutSource(t *testing.T) {
	cfg := Default()
	cfg.Log.Level = "loud"
	err := cfg.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "log.level: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range logLevels {
		if got := (Log{Level: level}).SlogLevel(); got != want {
			t.Errorf("%s: got %v want %v", level, got, want)
		}
	}
}

// The shipped example must load as-is (it documents every option).
func TestExampleConfigLoads(t *testing.T) {
	if _, err := Load("../config.example.yml", nil); err != nil {
		t.Fatal(err)
	}
}

func TestS3Section(t *testing.T) {
	cfg, err := Parse("c.yml", []byte("storage:\n  s3:\n    endpoint: 127.0.0.1:9000\n    bucket: b\n    part_size: 32MiB\n    redirect: true\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.S3 == nil || cfg.Storage.S3.Bucket != "b" || cfg.Storage.S3.PartSizeBytes() != 32<<20 || !cfg.Storage.S3.Redirect {
		t.Fatalf("s3 section read as %+v", cfg.Storage.S3)
	}
	_, err = Parse("c.yml", []byte("storage:\n  s3:\n    endpoint: 127.0.0.1:9000\n    bucket: b\n    part_size: 1MiB\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "c.yml:5: storage.s3.part_size") {
		t.Fatalf("a too-small part size: %v, want an error naming c.yml:5 and storage.s3.part_size", err)
	}
	if n := cfg.Storage.S3.RedirectMinSizeBytes(); n != 1<<20 {
		t.Fatalf("redirect_min_size unset: %d, want 1 MiB", n)
	}
	for v, want := range map[string]int64{"0": 0, "64KiB": 64 << 10, "4MiB": 4 << 20} {
		cfg, err := Parse("c.yml", []byte("storage:\n  s3:\n    endpoint: 127.0.0.1:9000\n    bucket: b\n    redirect_min_size: "+v+"\n"), nil)
		if err != nil || cfg.Storage.S3.RedirectMinSizeBytes() != want {
			t.Fatalf("redirect_min_size %s: %v, %v; want %d", v, cfg, err, want)
		}
	}
	_, err = Parse("c.yml", []byte("storage:\n  s3:\n    endpoint: 127.0.0.1:9000\n    bucket: b\n    redirect_min_size: big\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "c.yml:5: storage.s3.redirect_min_size") {
		t.Fatalf("redirect_min_size big: %v, want an error naming c.yml:5 and storage.s3.redirect_min_size", err)
	}
	_, err = Parse("c.yml", []byte("storage:\n  s3:\n    endpoint: 127.0.0.1:9000\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "storage.s3.bucket") {
		t.Fatalf("a missing bucket: %v, want an error naming storage.s3.bucket", err)
	}
}
