package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/minio/minio-go/v7"
	"go.yaml.in/yaml/v3"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/storage"
)

// stockRegistry is a stock distribution registry v3.1.2 (`registry serve`)
// on a folder or a MinIO bucket: the source of an import, started by the
// test itself whatever SLIPWAY_IT_REGISTRY says (the harness runs the stock
// registry only as the registry under test). It runs without auth.
type stockRegistry struct {
	Host string // 127.0.0.1:PORT
	// Root is the folder (storage.filesystem.rootdirectory), "" on S3.
	Root string
	// MinIO, Bucket and RootDir are the bucket (storage.s3), nil on a folder.
	MinIO   *harness.MinIO
	Bucket  string
	RootDir string // rootdirectory without its leading '/': "" or "legacy"

	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// Ref is a reference on the stock registry.
func (s *stockRegistry) Ref(repoAndTag string) string { return s.Host + "/" + repoAndTag }

// Source is the import's --from: the folder, or s3://bucket/rootdir.
func (s *stockRegistry) Source() string {
	if s.MinIO != nil {
		return "s3://" + s.Bucket + "/" + s.RootDir
	}
	return s.Root
}

// keyPrefix is where the stock layout lies in its bucket.
func (s *stockRegistry) keyPrefix() string {
	if s.RootDir == "" {
		return "docker/"
	}
	return s.RootDir + "/docker/"
}

// startStockOnFolder runs a stock registry on a fresh folder.
func startStockOnFolder(t *testing.T, tools *harness.Tools) *stockRegistry {
	t.Helper()
	s := &stockRegistry{Root: filepath.Join(t.TempDir(), "stock")}
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	s.start(t, tools, map[string]any{"filesystem": map[string]any{"rootdirectory": s.Root}})
	return s
}

// startStockOnBucket runs a stock registry on bucket of m, its layout under
// rootDir ("" for the bucket's top, as the stock s3 driver's default).
func startStockOnBucket(t *testing.T, tools *harness.Tools, m *harness.MinIO, bucket, rootDir string) *stockRegistry {
	t.Helper()
	s := &stockRegistry{MinIO: m, Bucket: bucket, RootDir: rootDir}
	s.start(t, tools, map[string]any{
		"s3": map[string]any{
			"accesskey": harness.MinIOAccessKey, "secretkey": harness.MinIOSecretKey,
			"region": harness.MinIORegion, "regionendpoint": m.Endpoint(), "forcepathstyle": true, "secure": false,
			"bucket": bucket, "rootdirectory": "/" + rootDir,
		},
		"redirect": map[string]any{"disable": true},
	})
	return s
}

// start writes the stock configuration with storage (the driver's
// section, and redirect) and runs the registry until the test ends.
func (s *stockRegistry) start(t *testing.T, tools *harness.Tools, storage map[string]any) {
	t.Helper()
	s.Host = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	storage["delete"] = map[string]any{"enabled": true}
	body, err := yaml.Marshal(map[string]any{
		"version": "0.1",
		"log":     map[string]any{"level": "info", "formatter": "text"},
		"storage": storage,
		"http":    map[string]any{"addr": s.Host, "secret": "import-test-secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "stock.yml")
	if err := os.WriteFile(cfg, body, 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.CreateTemp(harness.LogDir(), harness.Sanitize(t.Name())+"-stock-*.log")
	if err != nil {
		t.Fatal(err)
	}
	s.logPath = logf.Name()
	s.cmd = exec.Command(tools.Path("registry"), "serve", cfg)
	s.cmd.Env = append(harness.FilterEnv(os.Environ(), "REGISTRY_", "OTEL_"), "OTEL_TRACES_EXPORTER=none")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting the stock registry: %v", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			t.Logf("stock registry log (%s), last lines:\n%s", s.logPath, harness.LastLines(string(b), 6))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.logPath)
			t.Fatalf("the stock registry exited at start:\n%s", harness.LastLines(string(b), 30))
		default:
		}
		if resp, err := http.Get("http://" + s.Host + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the stock registry did not answer GET /v2/ within 30s (log %s)", s.logPath)
}

// stockFixture is what a stock registry was populated with: every tag
// ("it/app:1") and the digest it names, the images among them (what docker
// can pull), and the oras referrer attached to subject.
type stockFixture struct {
	tags     map[string]string
	images   []string // tags docker pulls: images and the index
	subject  string   // the tag the referrer is attached to
	referrer string   // its digest
	sbom     string   // the referrer's file content
}

// Stock repositories and tags of every fixture.
const (
	stockApp   = "it/app:1"   // image A (3 layers)
	stockWeb1  = "it/web:1"   // image A again: a second repository sharing its layers
	stockWeb2  = "it/web:2"   // image B = A + one layer
	stockMulti = "it/multi:1" // an index of A and B (crane index append)
)

// importImages are the local docker images every stock registry is filled
// from: A (three layers of random bytes, 32 KiB or more each) and B (A plus one layer), built
// once per test. local names them as the daemon knows them.
type importImages struct {
	a, b string
}

// buildImportImages builds A and B with docker's classic builder and
// removes them when the test ends.
func buildImportImages(t *testing.T, tools *harness.Tools) importImages {
	t.Helper()
	// A tag of its own: another test binary may build at the same time
	// on the same daemon.
	run := make([]byte, 4)
	_, _ = rand.Read(run)
	tag := hex.EncodeToString(run)
	imgs := importImages{a: "slipway-it/import-a:" + tag, b: "slipway-it/import-b:" + tag}
	tools.BuildScratchImage(imgs.a,
		harness.ImageFile{Path: "/base.bin", Size: 256 << 10},
		harness.ImageFile{Path: "/lib.bin", Size: 96 << 10},
		harness.ImageFile{Path: "/etc.bin", Size: 32 << 10})
	dir := t.TempDir()
	app := make([]byte, 64<<10)
	_, _ = rand.Read(app)
	if err := os.WriteFile(filepath.Join(dir, "app.bin"), app, 0o644); err != nil {
		t.Fatal(err)
	}
	df := "FROM " + imgs.a + "\nCOPY app.bin /app.bin\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	tools.RunCmd(harness.Cmd{Args: []string{"docker", "build", "-t", imgs.b, dir}, Env: []string{"DOCKER_BUILDKIT=0"}})
	t.Cleanup(func() { _, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", imgs.b}}) })
	return imgs
}

// populate fills a stock registry: docker pushes A as it/app:1 and
// it/web:1, B as it/web:2; crane makes the index it/multi:1 of both (a
// Docker manifest list: skopeo copies an OCI index of Docker manifests
// only by converting it, which changes its digest); oras attaches an SBOM
// to it/app:1 (the stock registry has no referrers API, so oras also
// writes the referrers tag sha256-<hex>). It returns every tag the
// registry then lists, with its digest.
func populate(t *testing.T, tools *harness.Tools, s *stockRegistry, imgs importImages) *stockFixture {
	t.Helper()
	for tag, img := range map[string]string{stockApp: imgs.a, stockWeb1: imgs.a, stockWeb2: imgs.b} {
		ref := s.Ref(tag)
		tools.Run("docker", "tag", img, ref)
		tools.Run("docker", "push", ref)
		tools.Run("docker", "image", "rm", ref)
	}
	tools.Run("crane", "index", "append", "--insecure", "--docker-empty-base", "-m", s.Ref(stockApp), "-m", s.Ref(stockWeb2), "-t", s.Ref(stockMulti))

	f := &stockFixture{images: []string{stockApp, stockWeb1, stockWeb2, stockMulti}, subject: stockApp}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	f.sbom = `{"sbom":"` + hex.EncodeToString(nonce) + `"}` + "\n"
	if err := os.WriteFile(filepath.Join(tools.Dir, "sbom.json"), []byte(f.sbom), 0o644); err != nil {
		t.Fatal(err)
	}
	var attached struct {
		Digest string `json:"digest"`
	}
	decodeJSON(t, tools.Run("oras", "attach", "--plain-http", "--format", "json",
		"--artifact-type", "application/vnd.example.sbom+json", s.Ref(f.subject), "sbom.json:application/json"), &attached)
	f.referrer = attached.Digest
	f.tags = stockTags(t, s)
	t.Logf("stock registry %s (%s): %d tags %v, referrer %s", s.Host, s.Source(), len(f.tags), f.tags, f.referrer)
	return f
}

// stockTags lists every tag of the fixture's repositories on the stock
// registry, with the digest it names.
func stockTags(t *testing.T, s *stockRegistry) map[string]string {
	t.Helper()
	tags := map[string]string{}
	for _, repo := range []string{"it/app", "it/web", "it/multi"} {
		r := parseRef(t, s.Ref(repo)).Context()
		list, err := remote.List(r)
		if err != nil {
			t.Fatalf("listing the tags of %s on the stock registry: %v", repo, err)
		}
		for _, tag := range list {
			desc, err := remote.Head(r.Tag(tag))
			if err != nil {
				t.Fatalf("HEAD %s:%s on the stock registry: %v", repo, tag, err)
			}
			tags[repo+":"+tag] = desc.Digest.String()
		}
	}
	return tags
}

// stockObject is one object of the stock storage as it is listed: its
// size and a version (the S3 ETag; a folder's file: the SHA-256 of its
// bytes, since a hard link changes a file's mtime and link count, not its
// content, 7.4).
type stockObject struct {
	size    int64
	version string
}

// snapshot lists every object of the stock storage.
func (s *stockRegistry) snapshot(t *testing.T) map[string]stockObject {
	t.Helper()
	out := map[string]stockObject{}
	if s.MinIO != nil {
		for _, o := range s.MinIO.Objects(t, s.Bucket, s.keyPrefix()) {
			out[o.Key] = stockObject{o.Size, o.ETag}
		}
		return out
	}
	err := filepath.WalkDir(s.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(s.Root, p)
		out[filepath.ToSlash(rel)] = stockObject{int64(len(b)), hex.EncodeToString(sum[:])}
		return nil
	})
	if err != nil {
		t.Fatalf("listing the stock folder: %v", err)
	}
	return out
}

// requireSameSnapshot fails unless after lists exactly what before did.
func requireSameSnapshot(t *testing.T, what string, before, after map[string]stockObject) {
	t.Helper()
	var diffs []string
	for k, b := range before {
		if a, ok := after[k]; !ok {
			diffs = append(diffs, "gone: "+k)
		} else if a != b {
			diffs = append(diffs, fmt.Sprintf("changed: %s (%d %s -> %d %s)", k, b.size, b.version, a.size, a.version))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "new: "+k)
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s changed (%d of %d objects):\n%s", what, len(diffs), len(before), strings.Join(diffs, "\n"))
	} else if len(before) == 0 {
		t.Errorf("%s: the snapshot is empty", what)
	}
}

// requireStockServes checks the stock registry still serves every tag of
// f with its digest, and every image whole (each blob read and checked).
func requireStockServes(t *testing.T, tools *harness.Tools, s *stockRegistry, f *stockFixture) {
	t.Helper()
	if got := stockTags(t, s); fmt.Sprint(got) != fmt.Sprint(f.tags) {
		t.Errorf("the stock registry now lists %v, it listed %v", got, f.tags)
	}
	for _, tag := range f.images {
		tools.Run("crane", "validate", "--insecure", "--remote", s.Ref(tag))
	}
}

// s3Counter is bench/s3count between a client and MinIO: what the client
// sends its S3 requests to (Endpoint), and the counts of what passed.
type s3Counter struct {
	Addr    string // 127.0.0.1:PORT the client talks S3 to
	control string
}

// s3Take is bench/s3count's /take answer.
type s3Take struct {
	Total    int              `json:"total"`
	Counts   map[string]int   `json:"counts"`
	Bytes    map[string]int64 `json:"bytes"`
	Requests []struct {
		Method        string `json:"method"`
		Path          string `json:"path"`
		Query         string `json:"query"`
		Kind          string `json:"kind"`
		Status        int    `json:"status"`
		Bytes         int64  `json:"bytes"`
		ResponseBytes int64  `json:"response_bytes"`
	} `json:"requests"`
	ResponseBytes map[string]int64 `json:"response_bytes"`
}

// startS3Counter builds bench/s3count (its own module) and runs it in front
// of m until the test ends, every write held writeDelay (0: none).
func startS3Counter(t *testing.T, m *harness.MinIO, writeDelay time.Duration) *s3Counter {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "s3count")
	build := exec.Command("go", "build", "-o", bin, "./s3count")
	build.Dir = filepath.Join(harness.ModuleRoot(), "bench")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building bench/s3count: %v\n%s", err, out)
	}
	c := &s3Counter{Addr: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)), control: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))}
	logf, err := os.CreateTemp(harness.LogDir(), harness.Sanitize(t.Name())+"-s3count-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-listen", c.Addr, "-target", m.Endpoint(), "-control", c.control, "-write-delay", writeDelay.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.take(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("bench/s3count did not answer /take: %v", err)
		}
	}
	return c
}

func (c *s3Counter) take() (s3Take, error) {
	var out s3Take
	resp, err := http.Get("http://" + c.control + "/take")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(b, &out)
}

// Take returns what passed since the last take, or fails the test.
func (c *s3Counter) Take(t *testing.T) s3Take {
	t.Helper()
	out, err := c.take()
	if err != nil {
		t.Fatalf("bench/s3count /take: %v", err)
	}
	return out
}

// withS3Endpoint copies reg's configuration with storage.s3.endpoint set
// to endpoint (host:port): the same bucket and credentials, reached
// through bench/s3count.
func withS3Endpoint(t *testing.T, reg *harness.Registry, endpoint string) string {
	t.Helper()
	return rewriteConfig(t, reg, fmt.Sprintf("endpoint: %q", reg.S3.MinIO.Addr), fmt.Sprintf("endpoint: %q", endpoint))
}

// withWriteDelay copies reg's configuration with every storage write
// delayed by d (storage.test_write_delay), so a kill lands mid-import.
func withWriteDelay(t *testing.T, reg *harness.Registry, d time.Duration) string {
	t.Helper()
	return rewriteConfig(t, reg, "test_write_delay: 0s", "test_write_delay: "+d.String())
}

func rewriteConfig(t *testing.T, reg *harness.Registry, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(reg.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), old) != 1 {
		t.Fatalf("%s does not hold %q once:\n%s", reg.ConfigPath(), old, b)
	}
	f, err := os.CreateTemp(t.TempDir(), "import-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Replace(string(b), old, new, 1)); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// importRun is one `slipway import`: its summary (stdout), stderr and exit
// status.
type importRun struct {
	Summary importSummary
	Stdout  string
	Stderr  string
	Exit    int
}

// importSummary is the JSON summary `slipway import` prints (7.6).
type importSummary struct {
	Repositories kindCounts `json:"repositories"`
	Blobs        kindCounts `json:"blobs"`
	Manifests    kindCounts `json:"manifests"`
	Referrers    kindCounts `json:"referrers"`
	Tags         kindCounts `json:"tags"`
	Conflicts    []struct {
		Tag         string `json:"tag"`
		Stock       string `json:"stock"`
		Slipway     string `json:"slipway"`
		Overwritten bool   `json:"overwritten"`
	} `json:"conflicts"`
	Problems []struct {
		Key     string `json:"key"`
		Message string `json:"message"`
	} `json:"problems"`
	Bytes map[string]int64 `json:"bytes"`
}

type kindCounts struct {
	Imported int `json:"imported"`
	Present  int `json:"present"`
	Skipped  int `json:"skipped"`
}

// written is how many objects of every kind the run imported.
func (s importSummary) written() int {
	return s.Repositories.Imported + s.Blobs.Imported + s.Manifests.Imported + s.Referrers.Imported + s.Tags.Imported
}

// requireBytesBy fails unless every blob byte the run imported went one
// way (the summary's bytes per mode: referenced, copied-by-store,
// streamed).
func requireBytesBy(t *testing.T, r importRun, mode string) {
	t.Helper()
	for m, n := range r.Summary.Bytes {
		if m != mode && n != 0 {
			t.Errorf("%d bytes imported %s, want every byte %s: %v", n, m, mode, r.Summary.Bytes)
		}
	}
	if r.Summary.Bytes[mode] == 0 {
		t.Errorf("no byte imported %s: %v", mode, r.Summary.Bytes)
	}
}

// importCmd is `slipway import --config cfg args...`, not started.
func importCmd(t *testing.T, cfg string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(harness.SlipwayBinary(t), append([]string{"import", "--config", cfg}, args...)...)
	cmd.Env = append(harness.FilterEnv(os.Environ(), "SLIPWAY_", "AWS_"),
		"AWS_ACCESS_KEY_ID="+harness.MinIOAccessKey, "AWS_SECRET_ACCESS_KEY="+harness.MinIOSecretKey, "AWS_REGION="+harness.MinIORegion)
	return cmd
}

// runImport runs `slipway import` to its end; a summary that does not
// parse fails the test when the run exited 0 or 1 (both print one).
func runImport(t *testing.T, cfg string, args ...string) importRun {
	t.Helper()
	cmd := importCmd(t, cfg, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := importRun{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("running slipway import: %v", err)
	}
	t.Logf("$ slipway import %s  (%s, exit %d)\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), r.Exit, harness.LastLines(r.Stderr, 15))
	if (r.Exit == 0 || r.Exit == 1) && strings.TrimSpace(r.Stdout) != "" {
		decodeJSON(t, r.Stdout, &r.Summary)
	}
	return r
}

// requireImportOK runs an import that must succeed with no problem.
func requireImportOK(t *testing.T, cfg string, args ...string) importRun {
	t.Helper()
	r := runImport(t, cfg, args...)
	if r.Exit != 0 || len(r.Summary.Problems) > 0 {
		t.Fatalf("slipway import %s: exit %d, problems %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Exit, r.Summary.Problems, r.Stdout, harness.LastLines(r.Stderr, 40))
	}
	return r
}

// startImport starts `slipway import` without waiting; wait returns its
// wait status.
func startImport(t *testing.T, cfg string, args ...string) (cmd *exec.Cmd, wait func() syscall.WaitStatus) {
	t.Helper()
	cmd = importCmd(t, cfg, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, func() syscall.WaitStatus {
		_ = cmd.Wait()
		t.Logf("killed import's output:\n%s", harness.LastLines(out.String(), 15))
		return cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
}

// storeShape is what a Slipway store holds, key → content, with what two
// equal imports may differ in left out: data objects (random names; the
// descriptors naming them are kept, by size, and an outside descriptor by
// the stock key it names too), tag journals and indexes (bookkeeping of
// tag reads and writes), the S3 probe, collector and account objects, a
// stock layout under docker/; ledger records by prefix and count (their
// ids and times are new on every run).
func storeShape(t *testing.T, reg *harness.Registry) map[string]string {
	t.Helper()
	st := reg.Store(t)
	ctx := context.Background()
	shape := map[string]string{}
	for _, o := range listInfos(t, st, "") {
		k := o.Key
		switch {
		case strings.HasPrefix(k, "docker/"): // a stock layout sharing the bucket, not Slipway's
			continue
		case strings.HasPrefix(k, "data/"), strings.Contains(k, "/_tagjournal/"), strings.Contains(k, "/_tagindex/"),
			strings.HasPrefix(k, "_slipway/"), strings.HasPrefix(k, "gc/"), strings.HasPrefix(k, "auth/"):
			continue
		case strings.HasPrefix(k, "ledger/"):
			p := k[:strings.LastIndex(k, "/")+1]
			shape[p] = fmt.Sprint(atoiOr0(shape[p]) + 1)
			continue
		}
		rc, _, err := st.Get(ctx, k, storage.GetOptions{})
		if err != nil {
			t.Fatalf("reading %s: %v", k, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading %s: %v", k, err)
		}
		if strings.HasPrefix(k, "blobs/") {
			var d struct {
				Data json.RawMessage `json:"data"`
				Size int64           `json:"size"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("descriptor %s: %v: %s", k, err, b)
			}
			shape[k] = fmt.Sprintf("blob of %d bytes", d.Size)
			if strings.HasPrefix(string(d.Data), "{") { // an outside descriptor: the stock key it names
				shape[k] += " at " + string(d.Data)
			}
			continue
		}
		sum := sha256.Sum256(b)
		shape[k] = fmt.Sprintf("%d bytes sha256:%x", len(b), sum[:6])
	}
	return shape
}

func atoiOr0(s string) int {
	var n int
	_, _ = fmt.Sscan(s, &n)
	return n
}

// shapeDiff lists what differs between two store shapes.
func shapeDiff(want, got map[string]string) []string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "missing: "+k)
		} else if g != w {
			d = append(d, fmt.Sprintf("differs: %s: %s, want %s", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "extra: "+k)
		}
	}
	sort.Strings(d)
	return d
}

// listInfos lists every object under prefix, with its size, ETag and time.
func listInfos(t *testing.T, st storage.Store, prefix string) []storage.Info {
	t.Helper()
	var out []storage.Info
	after := ""
	for {
		page, err := st.List(context.Background(), storage.ListOptions{Prefix: prefix, StartAfter: after})
		if err != nil {
			t.Fatalf("listing %q: %v", prefix, err)
		}
		out = append(out, page.Objects...)
		if len(page.Objects) > 0 {
			after = page.Objects[len(page.Objects)-1].Key
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return out
		}
	}
}

// listing is every object of reg's store with its size, ETag and time:
// two equal listings mean nothing was written in between. Left out: the
// probe opening an S3 store writes, and tag journal entries, which a push
// finishes after its response (an entry turns "done"); every tag write
// also writes the tag itself, which is listed.
func listing(t *testing.T, reg *harness.Registry) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range listInfos(t, reg.Store(t), "") {
		if strings.HasPrefix(o.Key, "_slipway/") || strings.Contains(o.Key, "/_tagjournal/") {
			continue
		}
		out[o.Key] = fmt.Sprintf("%d %s %s", o.Size, o.ETag, o.ModTime.UTC().Format(time.RFC3339Nano))
	}
	return out
}

// sameRepo maps a stock tag to the same name in Slipway.
func sameRepo(tag string) string { return tag }

// requireClientsPull pulls every tag of f from reg, renamed by rename,
// with the real clients as the ci user: crane and skopeo read every tag's
// manifest and must see the stock digest; docker pulls every image (and
// the index), skopeo copies them with every blob into a folder and crane
// validates them blob by blob; oras finds the referrer of f.subject
// through the referrers API and pulls its file back.
func requireClientsPull(t *testing.T, reg *harness.Registry, f *stockFixture, rename func(string) string) {
	t.Helper()
	tools := harness.NewTools(t)
	tools.DockerLogin(reg.Host, reg.User())
	tools.CraneLogin(reg.Host, reg.User())
	tools.OrasLogin(reg.Host, reg.User())
	creds := reg.User().String()

	tags := make([]string, 0, len(f.tags))
	for tag := range f.tags {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		ref, want := reg.Ref(rename(tag)), f.tags[tag]
		if got := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", ref)); got != want {
			t.Errorf("crane digest %s = %s, the stock registry has %s", ref, got, want)
		}
		raw := tools.Run("skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", creds, "docker://"+ref)
		if got := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(raw))); got != want {
			t.Errorf("skopeo inspect --raw %s hashes to %s, the stock registry has %s", ref, got, want)
		}
	}
	for _, tag := range f.images {
		ref, want := reg.Ref(rename(tag)), f.tags[tag]
		t.Cleanup(func() { _, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", ref}}) })
		out := tools.Run("docker", "pull", ref)
		if got := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), out, "pulled digest"); got != want {
			t.Errorf("docker pull %s: digest %s, the stock registry has %s", ref, got, want)
		}
		tools.Run("crane", "validate", "--insecure", "--remote", ref)
		// dir: keeps the manifest as it is (an OCI layout would convert
		// Docker's media types, and the digest with them).
		dir := filepath.Join(tools.Dir, "skopeo-"+strings.NewReplacer("/", "-", ":", "-").Replace(tag))
		tools.Run("skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--src-creds", creds, "docker://"+ref, "dir:"+dir)
		if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err != nil {
			t.Error(err)
		} else if got := fmt.Sprintf("sha256:%x", sha256.Sum256(b)); got != want {
			t.Errorf("skopeo copy %s: the manifest copied hashes to %s, the stock registry has %s", ref, got, want)
		}
	}

	subject := reg.Ref(rename(f.subject))
	out := tools.Run("oras", "discover", "--plain-http", "--distribution-spec", "v1.1-referrers-api", "--format", "json", subject)
	if !strings.Contains(out, f.referrer) {
		t.Errorf("oras discover (referrers API) %s does not list the imported referrer %s:\n%s", subject, f.referrer, out)
	}
	repo, _, _ := strings.Cut(rename(f.subject), ":")
	pulled := filepath.Join(tools.Dir, "oras-pulled")
	tools.Run("oras", "pull", "--plain-http", "-o", pulled, reg.Ref(repo+"@"+f.referrer))
	if got, err := os.ReadFile(filepath.Join(pulled, "sbom.json")); err != nil || string(got) != f.sbom {
		t.Errorf("oras pull of the referrer: %q, %v; want %q", got, err, f.sbom)
	}
}

// readObject reads a whole object of a bucket on m.
func readObject(t *testing.T, m *harness.MinIO, bucket, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := m.Client(t).GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("reading %s/%s: %v", bucket, key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s/%s: %v", bucket, key, err)
	}
	return string(b)
}
