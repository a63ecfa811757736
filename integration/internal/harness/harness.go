// Package harness starts and stops the registry under test for the
// integration tests, and runs the real clients (docker, ctr, crane, skopeo,
// oras, regctl, the OCI conformance suite) against it.
//
// The registry under test is Slipway (cmd/slipway, built once per test
// binary by Main) unless SLIPWAY_IT_REGISTRY=stock, which runs the stock
// distribution registry (`registry`, v3.1.2) instead: a reference to debug
// the tests themselves and to compare behaviour.
//
// Environment:
//
//	SLIPWAY_IT_REGISTRY=slipway|stock  which server to test (default slipway)
//	SLIPWAY_IT_BINARY=PATH             use this slipway binary instead of building one
//	SLIPWAY_IT_STOCK_BINARY=PATH       the stock registry binary (default: `registry` on PATH or in GOPATH/bin)
//	SLIPWAY_IT_LOG_DIR=DIR             keep server logs and reports here (default: a temp dir, removed when all tests pass)
//	SLIPWAY_IT_KEEP_LOGS=1             keep the default log dir even when all tests pass
//	SLIPWAY_IT_MINIO=PATH              the MinIO server binary (default: `minio` on PATH or in GOPATH/bin)
//	SLIPWAY_IT_VERSITYGW=PATH          the versitygw binary (default: `versitygw` on PATH or in GOPATH/bin)
//
// Storage is an empty folder (Start) or a MinIO bucket (StartOpts with
// Options.S3): a fresh bucket on the MinIO shared by the whole test binary
// (SharedMinIO, started on first use and stopped by Main), or on a private
// MinIO a test may stop and start (StartMinIO). With S3.VersityGW the
// bucket is on the shared versitygw instead (SharedVersityGW), the second
// S3 implementation.
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// Kinds of registry the harness can run.
const (
	KindSlipway = "slipway"
	KindStock   = "stock"
)

var (
	kind       string
	slipwayBin string // set by Main in slipway mode
	stockBin   string // set by Main in stock mode
	logDir     string // set by Main
	moduleRoot string // set by Main
)

// Kind is the registry under test: KindSlipway or KindStock.
func Kind() string { return kind }

// IsStock reports whether the tests run against the stock distribution
// registry.
func IsStock() bool { return kind == KindStock }

// SlipwayBinary is the slipway binary under test (built by Main), for
// tests that run it directly; it fails the test against the stock registry.
func SlipwayBinary(t testing.TB) string {
	t.Helper()
	if kind != KindSlipway {
		t.Fatalf("this test runs the slipway binary itself: SLIPWAY_IT_REGISTRY=%s cannot run it", kind)
	}
	return slipwayBin
}

// LogDir is the folder server logs and reports are copied to; it outlives
// the tests when one fails.
func LogDir() string { return logDir }

// Main prepares the registry binary, runs the tests and cleans up. Call it
// from TestMain: os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	kind = os.Getenv("SLIPWAY_IT_REGISTRY")
	if kind == "" {
		kind = KindSlipway
	}
	if kind != KindSlipway && kind != KindStock {
		fmt.Fprintf(os.Stderr, "harness: SLIPWAY_IT_REGISTRY=%q: want %q or %q\n", kind, KindSlipway, KindStock)
		return 2
	}
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 2
	}
	moduleRoot = root

	removeLogDir := false
	if d := os.Getenv("SLIPWAY_IT_LOG_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
			return 2
		}
		logDir = d
	} else {
		d, err := os.MkdirTemp("", "slipway-it-logs-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
			return 2
		}
		logDir = d
		removeLogDir = os.Getenv("SLIPWAY_IT_KEEP_LOGS") == ""
	}

	var buildDir string
	switch kind {
	case KindSlipway:
		if b := os.Getenv("SLIPWAY_IT_BINARY"); b != "" {
			slipwayBin = b
			break
		}
		buildDir, err = os.MkdirTemp("", "slipway-it-bin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
			return 2
		}
		slipwayBin = filepath.Join(buildDir, "slipway")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", slipwayBin, "./cmd/slipway")
		cmd.Dir = moduleRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness: go build ./cmd/slipway failed: %v\n%s", err, out)
			os.RemoveAll(buildDir)
			return 1
		}
		fmt.Fprintf(os.Stderr, "harness: built %s in %s\n", slipwayBin, time.Since(start).Round(time.Millisecond))
	case KindStock:
		stockBin = os.Getenv("SLIPWAY_IT_STOCK_BINARY")
		if stockBin == "" {
			stockBin, err = lookTool("registry")
			if err != nil {
				fmt.Fprintf(os.Stderr, "harness: stock registry binary not found (%v); run integration/scripts/setup.sh\n", err)
				return 2
			}
		}
	}
	fmt.Fprintf(os.Stderr, "harness: registry under test: %s\n", kind)

	code := m.Run()
	stopShared()

	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if code == 0 && removeLogDir {
		os.RemoveAll(logDir)
	} else {
		fmt.Fprintf(os.Stderr, "harness: server logs and reports kept in %s\n", logDir)
	}
	return code
}

// ModuleRoot is the folder of the slipway module's go.mod (set by Main).
func ModuleRoot() string { return moduleRoot }

func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			regexp.MustCompile(`(?m)^module\s+github\.com/slipway/slipway\s*$`).Match(data) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of github.com/slipway/slipway above %s", dir)
		}
	}
}
