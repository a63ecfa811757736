// Command regbench measures one scenario against an OCI distribution
// registry (Slipway, or the stock distribution registry) and prints one JSON
// line of results on stdout.
//
// Every scenario has two phases so that a driver (bench/run.sh) can sync and
// drop the page cache between them:
//
//	regbench -url http://127.0.0.1:5000 -scenario pull-16m -state DIR -phase setup
//	sync; echo 3 > /proc/sys/vm/drop_caches; sleep 10
//	regbench -url http://127.0.0.1:5000 -scenario pull-16m -state DIR -phase run
//
// -phase all (the default) runs both back to back. Any unexpected status
// code, digest or length makes regbench print the request and exit 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is the JSON line regbench prints.
type Result struct {
	Registry       string         `json:"registry,omitempty"`
	Rep            int            `json:"rep,omitempty"`
	Scenario       string         `json:"scenario"`
	Metric         string         `json:"metric"` // "MiB/s", "req/s" or "ms"
	Value          float64        `json:"value"`
	HigherIsBetter bool           `json:"higher_is_better"`
	Seconds        float64        `json:"seconds"`
	Bytes          int64          `json:"bytes,omitempty"`
	Ops            int64          `json:"ops,omitempty"`
	Workers        int            `json:"workers,omitempty"`
	P50ms          float64        `json:"p50_ms,omitempty"`
	P99ms          float64        `json:"p99_ms,omitempty"`
	Extra          map[string]any `json:"extra,omitempty"`
	// BackgroundBusyPct is how busy the machine's CPUs were (percent) in
	// the second before the timed run, as the driver measured it (-1: not
	// measured). Other load on a shared machine skews a run.
	BackgroundBusyPct int `json:"background_busy_pct"`
	// Where the machine's CPU time went during the timed run, in percent
	// of all CPUs (needs -server-pid): other user processes (the noise a
	// shared machine adds; OtherTop names the busiest), kernel threads
	// (writeback and the like, partly caused by the registry's own I/O) and
	// the hypervisor's steal.
	OtherCPUPct  *float64 `json:"other_cpu_pct,omitempty"`
	OtherTop     []string `json:"other_top,omitempty"`
	KernelCPUPct *float64 `json:"kernel_threads_cpu_pct,omitempty"`
	StealPct     *float64 `json:"steal_pct,omitempty"`
	// ServerCPUSeconds is the CPU time (user+system) the process under test
	// (-server-pid) spent during the timed run, and AlsoCPUSeconds that of
	// -also-pids (MinIO); per GiB moved they compare what each registry
	// costs for the same bytes.
	ServerCPUSeconds *float64 `json:"server_cpu_s,omitempty"`
	AlsoCPUSeconds   *float64 `json:"also_cpu_s,omitempty"`
	// ServerAllocs is what -server-metrics reported the Go runtime
	// allocated during the timed run (bytes and objects).
	ServerAllocBytes *float64 `json:"server_alloc_bytes,omitempty"`
	ServerMallocs    *float64 `json:"server_mallocs,omitempty"`
	Phase            string   `json:"phase,omitempty"` // set on failures: setup or run
	Error            string   `json:"error,omitempty"`
	Time             string   `json:"time"`
	URL              string   `json:"url"`
}

// config is what the flags set.
type config struct {
	base       *url.URL
	scenario   string
	phase      string
	stateDir   string
	label      string
	rep        int
	count      int           // blobs for push/pull; 0 = scenario default
	workers    int           // 0 = scenario default
	clients    int           // manifest clients
	copies     int           // copy-10: images copied per run
	duration   time.Duration // manifest hammer duration
	chunked    bool          // PATCH without Content-Length, as docker does
	verifyPull bool          // sha256 every pulled byte
	bgBusyPct  int           // echoed: the driver's background CPU measurement
	serverPID  int           // the registry's pid, to tell its CPU from others'
	metricsURL string        // the registry's Prometheus /metrics (Go runtime counters)
	repoPrefix string
	s3         s3flags // raw-* and s3-ops scenarios
	user       string  // token auth: Basic credentials for the realm
	password   string
	iters      int    // promote-*: timed iterations
	warmup     int    // promote-*: discarded iterations before them
	craneBin   string // promote-*: the crane binary
	seed       int64  // gc-*: content seed (the same bytes on every registry)
	cosignBin  string // gates-10: the cosign binary (logged in: DOCKER_CONFIG)
	cosignKey  string // gates-10: the private key the gated stage trusts
	kinds      string // gates-10: comma-separated subset of its operations
}

var scenarios = []string{
	"push-16m", "push-256k", "pull-16m", "pull-256k",
	"manifest-head", "manifest-get", "copy-10",
	"raw-push-16m", "raw-push-256k", "raw-pull-16m", "raw-pull-256k", "s3-ops",
	"promote-1m-warm", "promote-1m-cold", "promote-1g-warm", "promote-1g-cold",
	"tags-100", "tags-1000", "tags-10000",
	"gc-populate", "gc-verify", "gc-bucket", "gc-push",
	"gates-10",
}

func main() {
	var (
		cfg    config
		rawURL string
	)
	flag.StringVar(&rawURL, "url", "", "registry base URL, e.g. http://127.0.0.1:5000 (required)")
	flag.StringVar(&cfg.scenario, "scenario", "", "one of: "+strings.Join(scenarios, ", "))
	flag.StringVar(&cfg.phase, "phase", "all", "setup (untimed preparation), run (timed), or all")
	flag.StringVar(&cfg.stateDir, "state", "", "directory for state shared between phases (default: a temp dir, only with -phase all)")
	flag.StringVar(&cfg.label, "label", "", "registry label echoed in the result (e.g. slipway, stock)")
	flag.IntVar(&cfg.rep, "rep", 0, "repetition number echoed in the result")
	flag.IntVar(&cfg.count, "n", 0, "number of blobs (default: 64 for *-16m, 1024 for *-256k); gc-populate: repositories (default 2000)")
	flag.IntVar(&cfg.workers, "workers", 0, "parallel workers (default: 4 for *-16m, 8 for *-256k)")
	flag.IntVar(&cfg.copies, "copies", 0, "copy-10: how many images (each its own source) are copied one after the other; the run reports the median time (default 5)")
	flag.IntVar(&cfg.clients, "clients", 16, "concurrent clients for manifest-head/manifest-get")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long manifest-head/manifest-get hammer, and gc-push pushes")
	flag.BoolVar(&cfg.chunked, "chunked", true, "send PATCH bodies with chunked encoding (no Content-Length), as docker does")
	flag.BoolVar(&cfg.verifyPull, "verify-pull", false, "sha256 every pulled blob (costs client CPU; length and Docker-Content-Digest are always checked)")
	flag.IntVar(&cfg.bgBusyPct, "bg-busy-pct", -1, "echoed in the result: percent CPU busy on the machine just before the run, as the driver measured it")
	flag.IntVar(&cfg.serverPID, "server-pid", 0, "the registry's pid (same machine): report how much CPU other processes used during the run")
	flag.StringVar(&cfg.metricsURL, "server-metrics", "", "the registry's Prometheus /metrics URL: report what the Go runtime allocated during the run")
	flag.StringVar(&cfg.repoPrefix, "repo-prefix", "bench", "repository name prefix")
	flag.StringVar(&cfg.user, "user", os.Getenv("REGBENCH_USER"), "user for a registry with token auth (env REGBENCH_USER)")
	flag.StringVar(&cfg.password, "password", os.Getenv("REGBENCH_PASSWORD"), "password for -user (env REGBENCH_PASSWORD)")
	flag.StringVar(&cfg.s3.endpoint, "s3-endpoint", "", "raw-*: S3 endpoint host:port (or http:// URL)")
	flag.StringVar(&cfg.s3.bucket, "s3-bucket", "raw", "raw-*: bucket (created if missing)")
	flag.StringVar(&cfg.s3.accessKey, "s3-access-key", os.Getenv("MINIO_ROOT_USER"), "raw-*: access key (env MINIO_ROOT_USER)")
	flag.StringVar(&cfg.s3.secretKey, "s3-secret-key", os.Getenv("MINIO_ROOT_PASSWORD"), "raw-*: secret key (env MINIO_ROOT_PASSWORD)")
	flag.StringVar(&cfg.s3.counter, "s3-counter", "", "s3-ops: control address of the s3count proxy between the registry and S3")
	flag.IntVar(&cfg.iters, "iterations", 30, "promote-*, tags-*: timed iterations (promote: one promotion, one crane copy, one crane.Copy, one crane digest; tags: one tags API read, one admin page)")
	flag.IntVar(&cfg.warmup, "warmup", 3, "promote-*, tags-*: iterations run first and discarded")
	flag.StringVar(&cfg.craneBin, "crane", "crane", "promote-*: the crane binary (logged in to the registry: DOCKER_CONFIG)")
	flag.StringVar(&cfg.cosignBin, "cosign", "cosign", "gates-10: the cosign binary (logged in to the registry: DOCKER_CONFIG)")
	flag.StringVar(&cfg.cosignKey, "cosign-key", "", "gates-10: the cosign private key (no password) the gated stage trusts")
	flag.StringVar(&cfg.kinds, "kinds", "", "gates-10: comma-separated operations to run (default all: promote,promote-gated,release,release-gated)")
	flag.Int64Var(&cfg.seed, "seed", 1, "gc-populate: content seed (the same seed gives every registry the same bytes)")
	alsoPids := flag.String("also-pids", "", "comma-separated pids that are part of the system under test (e.g. MinIO): not counted as other load")
	summarizeFile := flag.String("summarize", "", "instead of measuring, read a results file of JSON lines and print the Markdown table")
	flag.Parse()

	for _, f := range strings.Split(*alsoPids, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			alsoOurs[n] = true
		}
	}
	if *summarizeFile != "" {
		if err := summarize(*summarizeFile, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "regbench -summarize: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(rawURL, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "regbench %s %s: FAIL: %v\n", cfg.label, cfg.scenario, err)
		// A JSON line too, so a driver's results file records the failure.
		line, _ := json.Marshal(Result{
			Registry: cfg.label, Rep: cfg.rep, Scenario: cfg.scenario,
			Phase: failedPhase, Error: err.Error(), BackgroundBusyPct: cfg.bgBusyPct,
			Time: time.Now().UTC().Format(time.RFC3339), URL: rawURL,
		})
		fmt.Println(string(line))
		os.Exit(1)
	}
}

// failedPhase is the phase that was running when run returned an error.
var failedPhase = "setup"

func run(rawURL string, cfg *config) error {
	isRaw := strings.HasPrefix(cfg.scenario, "raw-") || cfg.scenario == "gc-bucket"
	if isRaw && rawURL == "" {
		rawURL = "http://" + strings.TrimPrefix(cfg.s3.endpoint, "http://")
	}
	if rawURL == "" {
		return errors.New("-url is required")
	}
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("bad -url %q", rawURL)
	}
	cfg.base = u
	known := false
	for _, s := range scenarios {
		known = known || s == cfg.scenario
	}
	if !known {
		return fmt.Errorf("unknown -scenario %q (want one of %s)", cfg.scenario, strings.Join(scenarios, ", "))
	}
	switch cfg.phase {
	case "setup", "run", "all":
	default:
		return fmt.Errorf("bad -phase %q", cfg.phase)
	}
	if cfg.stateDir == "" {
		if cfg.phase != "all" {
			return errors.New("-state is required with -phase setup/run")
		}
		d, err := os.MkdirTemp("", "regbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		cfg.stateDir = d
	}
	if err := os.MkdirAll(cfg.stateDir, 0o755); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c := newClient(cfg.base)
	c.user, c.password = cfg.user, cfg.password
	if !isRaw {
		if err := c.ping(ctx); err != nil {
			return err
		}
	}

	var sc scenario
	switch cfg.scenario {
	case "push-16m":
		sc = &pushScenario{size: 16 << 20, count: def(cfg.count, 64), workers: def(cfg.workers, 4)}
	case "push-256k":
		sc = &pushScenario{size: 256 << 10, count: def(cfg.count, 1024), workers: def(cfg.workers, 8)}
	case "pull-16m":
		sc = &pullScenario{size: 16 << 20, count: def(cfg.count, 64), workers: def(cfg.workers, 4)}
	case "pull-256k":
		sc = &pullScenario{size: 256 << 10, count: def(cfg.count, 1024), workers: def(cfg.workers, 8)}
	case "manifest-head":
		sc = &manifestScenario{get: false}
	case "manifest-get":
		sc = &manifestScenario{get: true}
	case "copy-10":
		sc = &copyScenario{layers: 10, copies: def(cfg.copies, 5)}
	case "raw-push-16m":
		sc = &rawScenario{size: 16 << 20, count: def(cfg.count, 64), workers: def(cfg.workers, 4)}
	case "raw-push-256k":
		sc = &rawScenario{size: 256 << 10, count: def(cfg.count, 1024), workers: def(cfg.workers, 8)}
	case "raw-pull-16m":
		sc = &rawScenario{pull: true, size: 16 << 20, count: def(cfg.count, 64), workers: def(cfg.workers, 4)}
	case "raw-pull-256k":
		sc = &rawScenario{pull: true, size: 256 << 10, count: def(cfg.count, 1024), workers: def(cfg.workers, 8)}
	case "s3-ops":
		sc = s3OpsScenario{}
	case "promote-1m-warm", "promote-1m-cold", "promote-1g-warm", "promote-1g-cold":
		size := 1 << 20
		if strings.Contains(cfg.scenario, "-1g-") {
			size = 1 << 30
		}
		sc = &promoteScenario{name: cfg.scenario, totalSize: size, layers: 10, cold: strings.HasSuffix(cfg.scenario, "-cold")}
	case "tags-100", "tags-1000", "tags-10000":
		n, _ := strconv.Atoi(strings.TrimPrefix(cfg.scenario, "tags-"))
		sc = &tagsScenario{tags: n}
	case "gc-populate":
		sc = &gcPopulate{repos: def(cfg.count, 2000), workers: def(cfg.workers, 16)}
	case "gc-verify":
		sc = &gcVerify{workers: def(cfg.workers, 16)}
	case "gc-bucket":
		sc = gcBucket{}
	case "gc-push":
		sc = &gcPush{workers: def(cfg.workers, 8)}
	case "gates-10":
		sc = &gatesScenario{apps: 10, layers: 10, size: 1 << 20}
	}

	if cfg.phase == "setup" || cfg.phase == "all" {
		if err := sc.setup(ctx, c, cfg); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	if cfg.phase == "setup" {
		return nil
	}
	failedPhase = "run"
	memBefore, memOK := scrapeAllocs(ctx, cfg.metricsURL)
	before := takeCPUSample()
	res, err := sc.run(ctx, c, cfg)
	if err != nil {
		return err
	}
	if cfg.serverPID > 0 {
		after := takeCPUSample()
		if sh, ok := cpuSharesBetween(before, after, os.Getpid(), cfg.serverPID); ok {
			res.OtherCPUPct, res.KernelCPUPct, res.StealPct, res.OtherTop = &sh.Other, &sh.Kernel, &sh.Steal, sh.Top
		}
		if srv, also, ok := cpuSecondsBetween(before, after, cfg.serverPID); ok {
			res.ServerCPUSeconds, res.AlsoCPUSeconds = &srv, &also
		}
	}
	if memAfter, ok := scrapeAllocs(ctx, cfg.metricsURL); ok && memOK {
		b, n := memAfter.bytes-memBefore.bytes, memAfter.mallocs-memBefore.mallocs
		res.ServerAllocBytes, res.ServerMallocs = &b, &n
	}
	res.Scenario = cfg.scenario
	res.Registry = cfg.label
	res.Rep = cfg.rep
	res.BackgroundBusyPct = cfg.bgBusyPct
	res.Time = time.Now().UTC().Format(time.RFC3339)
	res.URL = cfg.base.String()
	line, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%w: %+v", err, *res)
	}
	fmt.Println(string(line))
	return nil
}

// scenario is one benchmark: setup is untimed, run is timed.
type scenario interface {
	setup(ctx context.Context, c *client, cfg *config) error
	run(ctx context.Context, c *client, cfg *config) (*Result, error)
}

func def(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

// stateFile is where a scenario keeps what its setup made.
func stateFile(cfg *config) string {
	return cfg.stateDir + "/" + cfg.scenario + ".json"
}

func saveState(cfg *config, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	tmp := stateFile(cfg) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, stateFile(cfg))
}

// readFileIfExists returns nil, nil for a missing file.
func readFileIfExists(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// setupState reads the state a run phase needs; none is an error.
func setupState(cfg *config, v any) error {
	ok, err := loadState(cfg, v)
	if err == nil && !ok {
		err = fmt.Errorf("no state in %s: run -phase setup first", stateFile(cfg))
	}
	return err
}

// loadState reads the state; ok is false if there is none.
func loadState(cfg *config, v any) (ok bool, err error) {
	b, err := os.ReadFile(stateFile(cfg))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

// percentile returns the q-quantile (0..1) of sorted durations, in ms.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return float64(sorted[i].Microseconds()) / 1000
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

// randSuffix is a short random name component.
func randSuffix() string {
	return fmt.Sprintf("%016x", rand.Uint64())
}
