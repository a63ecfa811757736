package integration

import (
	"crypto/rand"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestImport is issue 14's "done means" (docs/architecture.md 7.7): a
// real stock registry v3.1.2 on a folder and one on a MinIO bucket, each
// filled by docker pushes (two multi-layer images, two repositories
// sharing layers), a crane index and an oras referrer; then `slipway
// import` of each into Slipway, checked with docker, crane, skopeo and
// oras; at the end both stock storages are listed again and must be
// exactly as before, and the stock registries still serve every tag.
func TestImport(t *testing.T) {
	harness.SlipwayBinary(t)
	tools := harness.NewTools(t)
	tools.RequireDocker()
	imgs := buildImportImages(t, tools)
	fsStock := startStockOnFolder(t, tools)
	m := harness.SharedMinIO(t)
	s3Stock := startStockOnBucket(t, tools, m, m.NewBucket(t), "")
	fsFix := populate(t, tools, fsStock, imgs)
	s3Fix := populate(t, tools, s3Stock, imgs)
	// Pulls from Slipway must fetch every blob: nothing of A or B stays
	// in the daemon (B first: A is its parent).
	tools.Run("docker", "image", "rm", "-f", imgs.b)
	tools.Run("docker", "image", "rm", "-f", imgs.a)
	fsBefore, s3Before := fsStock.snapshot(t), s3Stock.snapshot(t)

	t.Run("folder", func(t *testing.T) { testImportFolder(t, fsStock, fsFix) })
	t.Run("same-bucket", func(t *testing.T) { testImportSameBucket(t, s3Stock, s3Fix) })
	t.Run("other-bucket", func(t *testing.T) { testImportOtherBucket(t, s3Stock, s3Fix) })
	t.Run("stages", func(t *testing.T) { testImportStages(t, fsStock, fsFix) })
	t.Run("not-a-layout", func(t *testing.T) { testImportNotALayout(t, fsStock) })
	t.Run("corrupt", func(t *testing.T) { testImportCorrupt(t, fsStock) })

	requireSameSnapshot(t, "the stock folder", fsBefore, fsStock.snapshot(t))
	requireSameSnapshot(t, "the stock bucket", s3Before, s3Stock.snapshot(t))
	requireStockServes(t, tools, fsStock, fsFix)
	requireStockServes(t, tools, s3Stock, s3Fix)
}

// testImportFolder: folder → folder on one filesystem. A clean run into
// one Slipway is the reference; into another, a run killed with SIGKILL
// after its first write, then a rerun, must give the same store (Verify
// clean), and a third run must write nothing. Every blob's data is a hard
// link to the stock file (no byte moved).
func testImportFolder(t *testing.T, stock *stockRegistry, f *stockFixture) {
	clean := harness.Start(t)
	r := requireImportOK(t, clean.ConfigPath(), "--from", stock.Source())
	if r.Summary.Tags.Imported != len(f.tags) || r.Summary.Referrers.Imported < 1 || r.Summary.Manifests.Imported < 4 || r.Summary.Blobs.Imported < 6 {
		t.Errorf("clean import summary: %+v; want %d tags, 4+ manifests, 1+ referrer, 6+ blobs imported\n%s", r.Summary, len(f.tags), r.Stdout)
	}
	requireBytesBy(t, r, "copied-by-store")
	want := storeShape(t, clean)
	verifyStore(t, clean)
	requireHardLinks(t, clean, stock)

	reg := harness.Start(t)
	from := []string{"--from", stock.Source()}
	requireKillConverges(t, reg, f, want, invocation{withWriteDelay(t, reg, 40*time.Millisecond), from}, invocation{reg.ConfigPath(), from},
		func() bool { return anyFile(filepath.Join(reg.Root, "blobs")) })
	requireClientsPull(t, reg, f, sameRepo)
}

// invocation is a configuration file and arguments of `slipway import`.
type invocation struct {
	cfg  string
	args []string
}

// requireKillConverges starts slow, an import whose writes are slowed
// down, kills it with SIGKILL once wrote() says it wrote a blob
// descriptor, and checks the kill was mid-run (the store differs from
// want, a clean import's shape); then normal, the same import at full
// speed, must give want, Verify clean, and a third run must import
// nothing and leave the store's listing as it was.
func requireKillConverges(t *testing.T, reg *harness.Registry, f *stockFixture, want map[string]string, slow, normal invocation, wrote func() bool) {
	t.Helper()
	cmd, wait := startImport(t, slow.cfg, slow.args...)
	deadline := time.Now().Add(30 * time.Second)
	for !wrote() {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			wait()
			t.Fatal("the import wrote no blob descriptor within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	if ws := wait(); !ws.Signaled() {
		t.Fatalf("the import ended (exit %d) before the SIGKILL: no write delay reached it?", ws.ExitStatus())
	}
	if d := shapeDiff(want, storeShape(t, reg)); len(d) == 0 {
		t.Fatal("the killed import had written everything already: the kill was not mid-run")
	} else {
		t.Logf("the killed import left %d differences to a clean run, e.g. %s", len(d), d[0])
	}

	requireImportOK(t, normal.cfg, normal.args...)
	if d := shapeDiff(want, storeShape(t, reg)); len(d) > 0 {
		t.Errorf("killed + rerun differs from one clean run:\n%s", strings.Join(d, "\n"))
	}
	verifyStore(t, reg)

	before := listing(t, reg)
	r := requireImportOK(t, normal.cfg, normal.args...)
	if n := r.Summary.written(); n != 0 || r.Summary.Tags.Present != len(f.tags) {
		t.Errorf("third run: %d objects imported, %d of %d tags present; want 0 and all: %+v", n, r.Summary.Tags.Present, len(f.tags), r.Summary)
	}
	for mode, n := range r.Summary.Bytes {
		if n != 0 {
			t.Errorf("third run: %d bytes by %s, want none", n, mode)
		}
	}
	if d := shapeDiff(before, listing(t, reg)); len(d) > 0 {
		t.Errorf("the third run wrote to the store:\n%s", strings.Join(d, "\n"))
	}
}

// requireHardLinks checks every blob descriptor of reg names a data file
// that is the stock registry's own data file (one inode: link(2)).
func requireHardLinks(t *testing.T, reg *harness.Registry, stock *stockRegistry) {
	t.Helper()
	n := 0
	for _, o := range listStore(t, reg, "blobs/") {
		b, err := os.ReadFile(filepath.Join(reg.Root, filepath.FromSlash(o.Key)))
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Data string `json:"data"`
		}
		if err := json.Unmarshal(b, &d); err != nil || d.Data == "" {
			t.Errorf("descriptor %s names no data object (%v): %s", o.Key, err, b)
			continue
		}
		parts := strings.Split(o.Key, "/") // blobs/sha256/<hh>/<hex>
		stockData := filepath.Join(stock.Root, "docker/registry/v2/blobs", parts[1], parts[3][:2], parts[3], "data")
		a, errA := os.Stat(filepath.Join(reg.Root, filepath.FromSlash(d.Data)))
		s, errS := os.Stat(stockData)
		if errA != nil || errS != nil || !os.SameFile(a, s) {
			t.Errorf("blob %s: Slipway's %s is not a hard link of the stock %s (%v, %v)", o.Key, d.Data, stockData, errA, errS)
		}
		n++
	}
	if n == 0 {
		t.Error("no blob descriptor in the imported store")
	}
	t.Logf("%d blobs imported as hard links of the stock files", n)
}

// anyFile reports whether a regular file exists below dir.
func anyFile(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}

// testImportSameBucket: Slipway on the stock registry's own bucket, its S3
// endpoint pointed at bench/s3count. The import must write no data object
// and copy nothing: no PUT under data/, no copy, part copy or multipart
// upload, and only metadata (under 1 KiB a written object on average);
// descriptors name the stock data (bucket_key). A second run writes
// nothing (but the store's start-up probe). Clients pull through
// redirects to presigned URLs of the stock data. Then a killed and rerun
// import in the same bucket.
func testImportSameBucket(t *testing.T, stock *stockRegistry, f *stockFixture) {
	reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{MinIO: stock.MinIO, Bucket: stock.Bucket, Redirect: true, RedirectMinSize: "0"}})
	counter := startS3Counter(t, stock.MinIO, 0)
	cfg := withS3Endpoint(t, reg, counter.Addr)
	args := []string{"--from", stock.Source(), "--from-endpoint", "http://" + counter.Addr}
	counter.Take(t)
	r := requireImportOK(t, cfg, args...)
	take := counter.Take(t)
	if r.Summary.Tags.Imported != len(f.tags) || r.Summary.Blobs.Imported < 6 {
		t.Errorf("summary %+v: want %d tags and 6+ blobs imported", r.Summary, len(f.tags))
	}
	requireBytesBy(t, r, "referenced")
	writes, written := 0, int64(0)
	for _, q := range take.Requests {
		switch {
		case q.Method == "PUT" && strings.HasPrefix(q.Path, "/"+stock.Bucket+"/data/"):
			t.Errorf("a data object was written: %s %s (%d bytes)", q.Method, q.Path, q.Bytes)
		case strings.Contains(q.Kind, "copy") || strings.Contains(q.Kind, "multipart-init"):
			t.Errorf("a copy or multipart upload: %s %s (%s)", q.Method, q.Path, q.Kind)
		}
		if q.Method == "PUT" || q.Method == "POST" {
			writes++
			written += q.Bytes
			if q.Bytes >= 16<<10 { // the smallest layer is 32 KiB
				t.Errorf("%s %s sent %d bytes: more than metadata", q.Method, q.Path, q.Bytes)
			}
		}
	}
	t.Logf("same-bucket import: %d S3 requests %v; %d writes, %d bytes sent", take.Total, take.Counts, writes, written)
	if writes == 0 || written >= int64(writes)<<10 {
		t.Errorf("%d writes sent %d bytes: want some, under 1 KiB each on average", writes, written)
	}
	outside := 0
	for _, o := range stock.MinIO.Objects(t, stock.Bucket, "blobs/") {
		b := readObject(t, stock.MinIO, stock.Bucket, o.Key)
		if strings.Contains(b, `"bucket_key"`) {
			outside++
		}
	}
	if outside < r.Summary.Blobs.Imported {
		t.Errorf("%d descriptors name outside data, %d blobs were imported", outside, r.Summary.Blobs.Imported)
	}

	r = requireImportOK(t, cfg, args...)
	take = counter.Take(t)
	if r.Summary.written() != 0 {
		t.Errorf("second run imported %d objects: %+v", r.Summary.written(), r.Summary)
	}
	for _, q := range take.Requests {
		// Opening Slipway's store writes its conditional-write probe
		// (_slipway/probe/), as every start does; the import itself
		// must write nothing.
		if q.Method != "GET" && q.Method != "HEAD" && !strings.HasPrefix(q.Path, "/"+stock.Bucket+"/_slipway/") {
			t.Errorf("second run wrote: %s %s (%s)", q.Method, q.Path, q.Kind)
		}
	}
	requireClientsPull(t, reg, f, sameRepo)
	if red, served := blobGETs(t, reg, ""); red == 0 || served > 0 {
		t.Errorf("blob GETs: %d redirected to presigned stock keys, %d served by Slipway; want all redirected", red, served)
	}
	verifyStore(t, reg)

	// A kill mid-import and a rerun by a second Slipway on the same bucket
	// under root killed/: the same store (outside descriptors naming the
	// same stock keys) as the import above. The killed run's writes are
	// slowed down by a second bench/s3count: the store's test_write_delay
	// wrapper would hide the bucket view, and with it reference mode.
	want := storeShape(t, reg)
	killed := harness.StartOpts(t, harness.Options{S3: &harness.S3{MinIO: stock.MinIO, Bucket: stock.Bucket, Root: "killed"}})
	slow := startS3Counter(t, stock.MinIO, 40*time.Millisecond)
	requireKillConverges(t, killed, f, want,
		invocation{withS3Endpoint(t, killed, slow.Addr), []string{"--from", stock.Source(), "--from-endpoint", "http://" + slow.Addr}},
		invocation{killed.ConfigPath(), []string{"--from", stock.Source()}},
		func() bool { return len(stock.MinIO.Objects(t, stock.Bucket, "killed/blobs/")) > 0 })
}

// testImportOtherBucket: Slipway on another bucket of the same MinIO: the
// blobs are server-side copies (no blob is downloaded, none uploaded), and
// nothing is written into the stock registry's bucket.
func testImportOtherBucket(t *testing.T, stock *stockRegistry, f *stockFixture) {
	reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{MinIO: stock.MinIO}})
	counter := startS3Counter(t, stock.MinIO, 0)
	cfg := withS3Endpoint(t, reg, counter.Addr)
	counter.Take(t)
	r := requireImportOK(t, cfg, "--from", stock.Source(), "--from-endpoint", "http://"+counter.Addr)
	take := counter.Take(t)
	requireBytesBy(t, r, "copied-by-store")
	copies := 0
	for _, q := range take.Requests {
		if strings.Contains(q.Kind, "copy") {
			copies++
		}
		if q.Method != "GET" && q.Method != "HEAD" && strings.HasPrefix(q.Path, "/"+stock.Bucket+"/") {
			t.Errorf("the import wrote into the bucket it reads: %s %s (%s)", q.Method, q.Path, q.Kind)
		}
		if q.Bytes >= 16<<10 || q.ResponseBytes >= 16<<10 { // the smallest layer is 32 KiB
			t.Errorf("%s %s (%s) moved %d bytes up, %d down: a blob through the importer", q.Method, q.Path, q.Kind, q.Bytes, q.ResponseBytes)
		}
	}
	t.Logf("other-bucket import: %d S3 requests %v", take.Total, take.Counts)
	if copies < r.Summary.Blobs.Imported || copies == 0 {
		t.Errorf("%d server-side copies for %d imported blobs", copies, r.Summary.Blobs.Imported)
	}
	requireClientsPull(t, reg, f, sameRepo)
	verifyStore(t, reg)
}

// testImportStages: --stage-map into staging/, where a tag pushed to
// Slipway with another digest is a conflict (reported, kept; replaced with
// --overwrite-mutable), and into the immutable production/, where every
// tag gets a ledger record with outcome imported that `slipway history`
// shows; a rerun adds no record.
func testImportStages(t *testing.T, stock *stockRegistry, f *stockFixture) {
	reg := harness.Start(t)
	tools := harness.NewTools(t)
	auth := as(reg.User())
	other := ociImage(t, 1, 4<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err := remote.Write(parseRef(t, reg.Ref("staging/app:1")), other, auth); err != nil {
		t.Fatal(err)
	}
	otherDigest := mustDigest(t, other).String()
	toStage := func(stage string) func(string) string {
		return func(tag string) string { return stage + strings.TrimPrefix(tag, "it/") }
	}
	headDigest := func(ref string) string {
		t.Helper()
		d, err := remote.Head(parseRef(t, reg.Ref(ref)), auth)
		if err != nil {
			t.Fatalf("HEAD %s: %v", ref, err)
		}
		return d.Digest.String()
	}

	before := listing(t, reg)
	r := runImport(t, reg.ConfigPath(), "--from", stock.Source(), "--stage-map", "it/=staging/", "--dry-run")
	if d := shapeDiff(before, listing(t, reg)); len(d) > 0 {
		t.Errorf("--dry-run wrote to the store:\n%s", strings.Join(d, "\n"))
	}
	wantConflict := func(what string, r importRun, overwritten bool) {
		t.Helper()
		c := r.Summary.Conflicts
		if len(c) != 1 || c[0].Tag != "staging/app:1" || c[0].Stock != f.tags[stockApp] || c[0].Slipway != otherDigest || c[0].Overwritten != overwritten {
			t.Errorf("%s: conflicts %+v, want staging/app:1 (stock %s, Slipway %s, overwritten %t)\n%s", what, c, f.tags[stockApp], otherDigest, overwritten, r.Stdout)
		}
	}
	wantConflict("--dry-run", r, false)

	r = runImport(t, reg.ConfigPath(), "--from", stock.Source(), "--stage-map", "it/=staging/")
	wantConflict("import into staging/", r, false)
	if r.Exit != 0 || len(r.Summary.Problems) > 0 || r.Summary.Tags.Imported != len(f.tags)-1 {
		t.Errorf("import into staging/ with a conflict: exit %d, problems %v, %d tags imported (want 0, none, %d)", r.Exit, r.Summary.Problems, r.Summary.Tags.Imported, len(f.tags)-1)
	}
	if got := headDigest("staging/app:1"); got != otherDigest {
		t.Errorf("staging/app:1 is %s after a conflicting import, want the pushed %s", got, otherDigest)
	}
	for tag, want := range f.tags {
		if tag != stockApp {
			if got := headDigest(toStage("staging/")(tag)); got != want {
				t.Errorf("%s = %s, want the stock %s", toStage("staging/")(tag), got, want)
			}
		}
	}
	r = requireImportOK(t, reg.ConfigPath(), "--from", stock.Source(), "--stage-map", "it/=staging/", "--overwrite-mutable")
	wantConflict("--overwrite-mutable", r, true)
	if got := headDigest("staging/app:1"); got != f.tags[stockApp] {
		t.Errorf("staging/app:1 is %s after --overwrite-mutable, want the stock %s", got, f.tags[stockApp])
	}

	requireImportOK(t, reg.ConfigPath(), "--from", stock.Source(), "--stage-map", "it/=production/")
	for tag, want := range f.tags {
		if got := headDigest(toStage("production/")(tag)); got != want {
			t.Errorf("%s = %s, want the stock %s", toStage("production/")(tag), got, want)
		}
	}
	hist, err := cli(t, tools, reg, reg.Admin(), "history", "app", "--json")
	if err != nil {
		t.Fatalf("slipway history app: %v\n%s", err, hist)
	}
	var page struct {
		Records []struct {
			Outcome string `json:"outcome"`
			Source  string `json:"source"`
			Target  string `json:"target"`
			Digest  string `json:"digest"`
		} `json:"records"`
	}
	decodeJSON(t, hist, &page)
	found := false
	for _, rec := range page.Records {
		if rec.Outcome == "imported" && rec.Target == "production/app:1" && rec.Digest == f.tags[stockApp] &&
			strings.HasPrefix(rec.Source, "import:") && strings.HasSuffix(rec.Source, "it/app:1") {
			found = true
		}
	}
	if !found {
		t.Errorf("slipway history app has no record imported → production/app:1 at %s from import:…it/app:1:\n%s", f.tags[stockApp], hist)
	}
	ledger := len(listStore(t, reg, "ledger/"))
	r = requireImportOK(t, reg.ConfigPath(), "--from", stock.Source(), "--stage-map", "it/=production/")
	if r.Summary.written() != 0 || len(listStore(t, reg, "ledger/")) != ledger {
		t.Errorf("rerun into production/: %d imported, ledger %d → %d objects", r.Summary.written(), ledger, len(listStore(t, reg, "ledger/")))
	}
}

// testImportNotALayout: a folder that is not a stock registry's storage,
// a folder inside one, and an empty bucket are refused with an error that
// names them, and nothing is written.
func testImportNotALayout(t *testing.T, stock *stockRegistry) {
	reg := harness.Start(t)
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("not a registry\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := harness.SharedMinIO(t)
	bucket := m.NewBucket(t)
	before := listing(t, reg)
	inside := filepath.Join(stock.Root, "docker", "registry")
	for _, args := range [][]string{
		{"--from", empty},
		{"--from", inside},
		{"--from", "s3://" + bucket + "/", "--from-endpoint", m.Endpoint()},
	} {
		r := runImport(t, reg.ConfigPath(), args...)
		names := strings.TrimSuffix(strings.TrimPrefix(args[1], "s3://"), "/")
		if r.Exit == 0 || !strings.Contains(r.Stderr, names) {
			t.Errorf("import %s: exit %d, stderr does not name %s:\n%s", strings.Join(args, " "), r.Exit, names, r.Stderr)
		}
	}
	if d := shapeDiff(before, listing(t, reg)); len(d) > 0 {
		t.Errorf("a refused import wrote:\n%s", strings.Join(d, "\n"))
	}
}

// testImportCorrupt: a copy of the stock folder with B's own layer
// overwritten by other bytes of its size and it/app:1's tag link garbled.
// With --verify the layer is a problem naming it and is not imported, nor
// is anything that needs it (it/web:2, the index it/multi:1); the tag link
// is a problem naming its key; the rest (it/web:1) is imported, and the
// run exits 1.
func testImportCorrupt(t *testing.T, stock *stockRegistry) {
	reg := harness.Start(t)
	src := filepath.Join(t.TempDir(), "stock")
	if out, err := exec.Command("cp", "-a", stock.Root, src).CombinedOutput(); err != nil {
		t.Fatalf("copying the stock folder: %v\n%s", err, out)
	}
	layers := func(tag string) map[string]bool {
		img, err := remote.Image(parseRef(t, stock.Ref(tag)))
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, l := range m.Layers {
			out[l.Digest.Hex] = true
		}
		return out
	}
	inA := layers(stockApp)
	own := ""
	for hex := range layers(stockWeb2) {
		if !inA[hex] {
			own = hex
		}
	}
	if own == "" {
		t.Fatal("image B has no layer of its own")
	}
	data := filepath.Join(src, "docker/registry/v2/blobs/sha256", own[:2], own, "data")
	fi, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	other := make([]byte, fi.Size())
	_, _ = rand.Read(other)
	link := "docker/registry/v2/repositories/it/app/_manifests/tags/1/current/link"
	for p, b := range map[string][]byte{data: other, filepath.Join(src, link): []byte("not a digest")} {
		if err := os.Remove(p); err != nil { // a fresh file: never write through a hard link
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	r := runImport(t, reg.ConfigPath(), "--from", src, "--verify")
	if r.Exit != 1 || !strings.Contains(r.Stdout, own) || !strings.Contains(r.Stdout, link) {
		t.Errorf("import --verify of a corrupt layout: exit %d (want 1), problems %+v (want %s and %s named)", r.Exit, r.Summary.Problems, own, link)
	}
	auth := as(reg.User())
	for tag, want := range map[string]bool{stockWeb1: true, stockApp: false, stockWeb2: false, stockMulti: false} {
		_, err := remote.Head(parseRef(t, reg.Ref(tag)), auth)
		if got := err == nil; got != want {
			t.Errorf("%s imported: %t, want %t (%v)", tag, got, want, err)
		}
	}
}
