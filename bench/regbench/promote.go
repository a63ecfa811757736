package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// promoteScenario (promote-1m-warm, promote-1m-cold, promote-1g-warm,
// promote-1g-cold) times Slipway's promotion of a 10-layer image from
// staging to production against crane copy of the same image between the
// same two repositories, interleaved, one operation at a time. Per
// iteration, in an order that rotates:
//
//	promote      POST /api/v1/promotions {"source":"staging/<app>:v1","to":"production","tag":…}
//	             with Basic auth on a warm keep-alive connection: the HTTP
//	             round trip as a client sees it (201 and the digest checked)
//	crane        `crane copy staging/<app>:v1 production/<app>:…` (the crane
//	             binary, logged in with `crane auth login`): the process's
//	             wall time, start-up and its token exchange included
//	crane-lib    crane.Copy (go-containerregistry, crane's default transport)
//	             in this process, its token fetched before the timer: the
//	             peer's best case without a process start
//	crane-digest `crane digest staging/<app>:v1`: a process start, the token
//	             exchange and one manifest HEAD, as a baseline to subtract
//
// warm: one target repository per size (production/app-<size>), a new tag
// per operation, so every blob is already linked there after the first.
// cold: every operation gets its own app (staging/<app>-<kind>-<i> was
// filled by setup through cross-repository mounts), so its target
// repository is new. After each operation (untimed) the target tag must
// name the source digest. The first -warmup iterations are discarded.
//
// With -s3-counter (the control address of bench/s3count between the
// registry and MinIO) run does one operation of each kind instead and
// reports the S3 requests each caused.
type promoteScenario struct {
	name      string
	totalSize int  // bytes of the 10 layers together
	cold      bool // a fresh target repository per operation
	layers    int
}

// promoteSource is the image setup pushed to staging for one size.
type promoteSource struct {
	App    string   `json:"app"` // staging/<app>, production/<app>
	Tag    string   `json:"tag"`
	Digest string   `json:"digest"`
	Blobs  []string `json:"blobs"` // config and layers
	Bytes  int64    `json:"bytes"` // layers
}

// promoteState is what setup leaves for run.
type promoteState struct {
	Source promoteSource `json:"source"`
	// Cold: the apps of each kind, one per iteration (warm-up included).
	Apps map[string][]string `json:"apps,omitempty"`
}

var promoteKinds = []string{"promote", "crane", "crane-lib", "crane-digest"}

func (s *promoteScenario) sizeLabel() string {
	if s.totalSize >= 1<<30 {
		return fmt.Sprintf("%dg", s.totalSize>>30)
	}
	return fmt.Sprintf("%dm", s.totalSize>>20)
}

func (s *promoteScenario) iterations(cfg *config) int { return cfg.warmup + cfg.iters }

func (s *promoteScenario) setup(ctx context.Context, c *client, cfg *config) error {
	// The source image, once per size for every row and repetition.
	srcFile := cfg.stateDir + "/promote-src-" + s.sizeLabel() + ".json"
	var src promoteSource
	if b, err := readFileIfExists(srcFile); err != nil {
		return err
	} else if b != nil {
		if err := json.Unmarshal(b, &src); err != nil {
			return err
		}
	} else {
		src = promoteSource{App: "app-" + s.sizeLabel(), Tag: "v1"}
		layers := genBlobs(s.layers, s.totalSize/s.layers)
		digest, _, err := pushImage(ctx, c, cfg, "staging/"+src.App, src.Tag, layers, 4)
		if err != nil {
			return err
		}
		src.Digest = digest
		blobs, err := imageBlobs(ctx, c, "staging/"+src.App, digest)
		if err != nil {
			return err
		}
		src.Blobs = blobs
		for _, l := range layers {
			src.Bytes += int64(len(l.data))
		}
		b, _ := json.Marshal(src)
		if err := writeFileAtomic(srcFile, b); err != nil {
			return err
		}
	}
	st := promoteState{Source: src}
	if s.cold {
		// One staging app per operation, filled by mounts (no data moves).
		st.Apps = map[string][]string{}
		prefix := fmt.Sprintf("cold-%s-%s", s.sizeLabel(), randSuffix()[:8])
		for _, kind := range []string{"promote", "crane", "crane-lib"} {
			for i := range s.iterations(cfg) {
				app := fmt.Sprintf("%s-%s-%d", prefix, kind, i)
				if err := mountImage(ctx, c, src, "staging/"+app); err != nil {
					return err
				}
				st.Apps[kind] = append(st.Apps[kind], app)
			}
		}
	}
	return saveState(cfg, st)
}

// imageBlobs lists the config and layer digests of a manifest.
func imageBlobs(ctx context.Context, c *client, repo, digest string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"+repo+"/manifests/"+digest), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	var m imageManifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, err
	}
	out := []string{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out, nil
}

// mountImage puts src's image into repo: every blob mounted from the
// source repository (201, no data), then the manifest under src.Tag.
func mountImage(ctx context.Context, c *client, src promoteSource, repo string) error {
	from := "staging/" + src.App
	if c.auth != nil {
		if _, err := c.auth.fetch(ctx, c.hc, "repository:"+from+":pull "+repoScope(repo)); err != nil {
			return err
		}
	}
	for _, d := range src.Blobs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v2/"+repo+"/blobs/uploads/?mount="+d+"&from="+from), nil)
		if err != nil {
			return err
		}
		resp, err := c.do(req, http.StatusCreated)
		if err != nil {
			return fmt.Errorf("mount %s into %s: %w", d, repo, err)
		}
		drain(resp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"+from+"/manifests/"+src.Digest), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	d, err := c.putManifest(ctx, repo, src.Tag, resp.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	if d != src.Digest {
		return fmt.Errorf("mounted manifest in %s is %s, want %s", repo, d, src.Digest)
	}
	return nil
}

// promoteOp is one timed operation: it returns how long it took and, for
// crane processes, the process's own CPU time.
type promoteOp func(ctx context.Context, i int) (elapsed, cpu time.Duration, err error)

func (s *promoteScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	var st promoteState
	err := setupState(cfg, &st)
	if err != nil {
		return nil, err
	}
	if !s.cold && cfg.warmup < 1 && cfg.s3.counter == "" {
		return nil, fmt.Errorf("%s needs -warmup ≥ 1 (the first copy into the target repository is not a warm one)", s.name)
	}
	src := st.Source
	host := c.base.Host
	run := fmt.Sprintf("r%d-%s", cfg.rep, randSuffix()[:6])
	// Which apps operation i of each kind uses.
	app := func(kind string, i int) string {
		if !s.cold {
			return src.App
		}
		return st.Apps[kind][i]
	}
	tagOf := func(kind string, i int) string {
		if s.cold {
			return "t1"
		}
		return fmt.Sprintf("%s-%s-%d", strings.ReplaceAll(kind, "crane-lib", "lib"), run, i)
	}

	// Slipway's promotion API: Basic auth, its own keep-alive connection.
	apiHC := &http.Client{Transport: newTransport()}
	promote := func(ctx context.Context, i int) (time.Duration, time.Duration, error) {
		body, _ := json.Marshal(map[string]string{
			"source": "staging/" + app("promote", i) + ":" + src.Tag,
			"to":     "production",
			"tag":    tagOf("promote", i),
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/api/v1/promotions"), bytes.NewReader(body))
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(cfg.user, cfg.password)
		start := time.Now()
		resp, err := apiHC.Do(req)
		if err != nil {
			return 0, 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		if resp.StatusCode != http.StatusCreated {
			return 0, 0, fmt.Errorf("POST /api/v1/promotions %s: %d, want 201: %s", body, resp.StatusCode, b)
		}
		var rec struct {
			Digest  string `json:"digest"`
			Outcome string `json:"outcome"`
		}
		if err := json.Unmarshal(b, &rec); err != nil || rec.Digest != src.Digest || rec.Outcome != "promoted" {
			return 0, 0, fmt.Errorf("promotion answered %s, want digest %s, outcome promoted", b, src.Digest)
		}
		return elapsed, 0, nil
	}
	craneProc := func(ctx context.Context, args ...string) (time.Duration, time.Duration, string, error) {
		cmd := exec.CommandContext(ctx, cfg.craneBin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		elapsed := time.Since(start)
		if err != nil {
			return 0, 0, "", fmt.Errorf("%s %s: %w: %s", cfg.craneBin, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return elapsed, cpu, strings.TrimSpace(out.String()), nil
	}
	craneCopy := func(ctx context.Context, i int) (time.Duration, time.Duration, error) {
		a := app("crane", i)
		e, cpu, _, err := craneProc(ctx, "copy", host+"/staging/"+a+":"+src.Tag, host+"/production/"+a+":"+tagOf("crane", i))
		return e, cpu, err
	}
	craneDigest := func(ctx context.Context, i int) (time.Duration, time.Duration, error) {
		e, cpu, out, err := craneProc(ctx, "digest", host+"/staging/"+src.App+":"+src.Tag)
		if err == nil && out != src.Digest {
			err = fmt.Errorf("crane digest printed %q, want %s", out, src.Digest)
		}
		return e, cpu, err
	}
	// crane.Copy in process, the way copy-10 does it.
	bt := &bearerTransport{next: remote.DefaultTransport.(*http.Transport).Clone()}
	libOpts := []crane.Option{crane.WithContext(ctx), crane.WithAuth(authn.Anonymous), crane.WithTransport(bt)}
	if c.base.Scheme == "http" {
		libOpts = append(libOpts, crane.Insecure)
	}
	craneLib := func(ctx context.Context, i int) (time.Duration, time.Duration, error) {
		a := app("crane-lib", i)
		if c.auth != nil {
			if bt.token, err = c.auth.token(ctx, c.hc, "repository:staging/"+a+":pull "+repoScope("production/"+a)); err != nil {
				return 0, 0, err
			}
		}
		start := time.Now()
		err := crane.Copy(host+"/staging/"+a+":"+src.Tag, host+"/production/"+a+":"+tagOf("crane-lib", i), libOpts...)
		return time.Since(start), 0, err
	}
	ops := map[string]promoteOp{"promote": promote, "crane": craneCopy, "crane-lib": craneLib, "crane-digest": craneDigest}
	// check (untimed): the target tag names the source digest.
	check := func(ctx context.Context, kind string, i int) error {
		if kind == "crane-digest" {
			return nil
		}
		repo, tag := "production/"+app(kind, i), tagOf(kind, i)
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url("/v2/"+repo+"/manifests/"+tag), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", manifestAccept)
		resp, err := c.do(req, http.StatusOK)
		if err != nil {
			return fmt.Errorf("after %s: %w", kind, err)
		}
		drain(resp)
		if got := resp.Header.Get("Docker-Content-Digest"); got != src.Digest {
			return fmt.Errorf("after %s: %s:%s is %q, want %s", kind, repo, tag, got, src.Digest)
		}
		return nil
	}

	if cfg.s3.counter != "" {
		return s.count(ctx, c, cfg, ops, check)
	}

	lat := map[string][]float64{}
	cpu := map[string][]float64{}
	var order []string
	total := time.Now()
	for i := range s.iterations(cfg) {
		for k := range promoteKinds {
			kind := promoteKinds[(i+k)%len(promoteKinds)]
			if i == cfg.warmup {
				order = append(order, kind)
			}
			e, pc, err := ops[kind](ctx, i)
			if err != nil {
				return nil, fmt.Errorf("iteration %d %s: %w", i, kind, err)
			}
			if err := check(ctx, kind, i); err != nil {
				return nil, fmt.Errorf("iteration %d: %w", i, err)
			}
			if i < cfg.warmup {
				continue
			}
			lat[kind] = append(lat[kind], float64(e.Microseconds())/1000)
			if pc > 0 {
				cpu[kind] = append(cpu[kind], float64(pc.Microseconds())/1000)
			}
		}
	}
	elapsed := time.Since(total)
	stats := map[string]any{}
	for _, kind := range promoteKinds {
		stats[kind] = map[string]float64{"p50": quantile(lat[kind], 0.5), "p99": quantile(lat[kind], 0.99)}
	}
	p := quantile(lat["promote"], 0.5)
	return &Result{
		Metric:         "ms",
		Value:          p,
		HigherIsBetter: false,
		Seconds:        elapsed.Seconds(),
		Bytes:          src.Bytes,
		Ops:            int64(cfg.iters),
		P50ms:          p,
		P99ms:          quantile(lat["promote"], 0.99),
		Extra: map[string]any{
			"mode":           map[bool]string{true: "cold", false: "warm"}[s.cold],
			"layers":         s.layers,
			"image_bytes":    src.Bytes,
			"digest":         src.Digest,
			"warmup":         cfg.warmup,
			"iterations":     cfg.iters,
			"first_order":    order,
			"ms":             lat,
			"process_cpu_ms": cpu,
			"stats_ms":       stats,
		},
	}, nil
}

// count runs one operation of each kind (after one untimed warm-up round
// for a warm target) and reads the S3 requests each caused from s3count.
func (s *promoteScenario) count(ctx context.Context, c *client, cfg *config, ops map[string]promoteOp, check func(context.Context, string, int) error) (*Result, error) {
	i := 0
	if !s.cold {
		for _, kind := range promoteKinds {
			if _, _, err := ops[kind](ctx, 0); err != nil {
				return nil, err
			}
		}
		i = 1
		if s.iterations(cfg) < 2 {
			return nil, fmt.Errorf("count needs 2 iterations (-warmup + -iterations)")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := takeCounts(ctx, cfg.s3.counter); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, kind := range promoteKinds {
		if _, _, err := ops[kind](ctx, i); err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		time.Sleep(300 * time.Millisecond) // anything the registry does right after
		m, err := takeCounts(ctx, cfg.s3.counter)
		if err != nil {
			return nil, err
		}
		out[kind] = m
		if err := check(ctx, kind, i); err != nil {
			return nil, err
		}
		if _, err := takeCounts(ctx, cfg.s3.counter); err != nil { // the check's own requests
			return nil, err
		}
	}
	return &Result{Metric: "S3 requests", Extra: map[string]any{
		"mode":   map[bool]string{true: "cold", false: "warm"}[s.cold],
		"counts": out,
	}}, nil
}

// quantile of unsorted values (nearest rank, like percentile).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}
