package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// gatesScenario (gates-10) times promotions with and without gates and
// releases of ten images against one promotion, on one Slipway whose
// stages are staging → production (no gates) and staging → gated
// (signed_by one cosign key, one required attestation: bench/run-gates.sh
// writes them). Setup pushes ten apps (staging/gates-<i>:v1, each its own
// 10-layer 1 MiB image) and signs and attests each with the cosign binary
// (-cosign, key -cosign-key, offline). Per iteration, in rotating order:
//
//	promote        POST /api/v1/promotions gates-0:v1 → production (a new tag)
//	promote-gated  the same into gated: the signature and the attestation
//	               are found and verified before anything is written
//	release        POST /api/v1/releases of all ten apps → production
//	release-gated  the same into gated
//
// Targets are warm (every blob linked after the first round, which
// -warmup discards): what is measured is the decision and the ledger, not
// link writes.
type gatesScenario struct {
	apps   int
	layers int
	size   int // bytes of the layers of one image together
}

var gatesKinds = []string{"promote", "promote-gated", "release", "release-gated"}

type gatesState struct {
	Apps    []string `json:"apps"`
	Digests []string `json:"digests"`
}

func (s *gatesScenario) setup(ctx context.Context, c *client, cfg *config) error {
	var st gatesState
	for i := range s.apps {
		app := fmt.Sprintf("gates-%d", i)
		d, _, err := pushImage(ctx, c, cfg, "staging/"+app, "v1", genBlobs(s.layers, s.size/s.layers), 4)
		if err != nil {
			return err
		}
		ref := c.base.Host + "/staging/" + app + "@" + d
		for _, args := range [][]string{
			{"sign", "--key", cfg.cosignKey, "--tlog-upload=false", "--allow-http-registry", "-y", ref},
			{"attest", "--key", cfg.cosignKey, "--type", "slsaprovenance", "--predicate", cfg.stateDir + "/provenance.json", "--tlog-upload=false", "--allow-http-registry", "-y", ref},
		} {
			if err := writeFileAtomic(cfg.stateDir+"/provenance.json", []byte(`{"builder":{"id":"https://ci.example/bench"},"buildType":"https://ci.example/build"}`)); err != nil {
				return err
			}
			cmd := exec.CommandContext(ctx, cfg.cosignBin, args...)
			cmd.Env = append(cmd.Environ(), "COSIGN_PASSWORD=")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("cosign %s: %w: %s", args[0], err, out)
			}
		}
		st.Apps = append(st.Apps, app)
		st.Digests = append(st.Digests, d)
	}
	return saveState(cfg, st)
}

func (s *gatesScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	var st gatesState
	if err := setupState(cfg, &st); err != nil {
		return nil, err
	}
	if cfg.warmup < 1 {
		return nil, fmt.Errorf("gates-10 needs -warmup ≥ 1 (the first promotion into a target links its blobs)")
	}
	run := fmt.Sprintf("r%d-%s", cfg.rep, randSuffix()[:6])
	hc := &http.Client{Transport: newTransport()}
	post := func(ctx context.Context, path string, body any, check func([]byte) error) (time.Duration, error) {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(path), bytes.NewReader(b))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(cfg.user, cfg.password)
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusCreated {
			return 0, fmt.Errorf("POST %s %s: %d, want 201: %s", path, b, resp.StatusCode, out)
		}
		return elapsed, check(out)
	}
	promote := func(stage string) func(context.Context, int) (time.Duration, error) {
		return func(ctx context.Context, i int) (time.Duration, error) {
			tag := fmt.Sprintf("p-%s-%d", run, i)
			return post(ctx, "/api/v1/promotions", map[string]string{"source": "staging/" + st.Apps[0] + ":v1", "to": stage, "tag": tag}, func(b []byte) error {
				var rec struct {
					Digest   string            `json:"digest"`
					Evidence []json.RawMessage `json:"evidence"`
				}
				if err := json.Unmarshal(b, &rec); err != nil || rec.Digest != st.Digests[0] {
					return fmt.Errorf("promotion answered %s, want digest %s", b, st.Digests[0])
				}
				if stage == "gated" && len(rec.Evidence) < 2 {
					return fmt.Errorf("gated promotion recorded no evidence: %s", b)
				}
				return nil
			})
		}
	}
	release := func(stage string) func(context.Context, int) (time.Duration, error) {
		return func(ctx context.Context, i int) (time.Duration, error) {
			tag := fmt.Sprintf("r-%s-%d", run, i)
			var images []map[string]string
			for _, a := range st.Apps {
				images = append(images, map[string]string{"source": "staging/" + a + ":v1", "tag": tag})
			}
			return post(ctx, "/api/v1/releases", map[string]any{"to": stage, "images": images}, func(b []byte) error {
				var rel struct {
					Members []struct {
						Digest string `json:"digest"`
					} `json:"members"`
				}
				if err := json.Unmarshal(b, &rel); err != nil || len(rel.Members) != len(st.Apps) {
					return fmt.Errorf("release answered %s, want %d members", b, len(st.Apps))
				}
				return nil
			})
		}
	}
	ops := map[string]func(context.Context, int) (time.Duration, error){
		"promote": promote("production"), "promote-gated": promote("gated"),
		"release": release("production"), "release-gated": release("gated"),
	}
	kinds := gatesKinds
	if cfg.kinds != "" {
		kinds = strings.Split(cfg.kinds, ",")
	}
	lat := map[string][]float64{}
	total := time.Now()
	for i := range cfg.warmup + cfg.iters {
		for k := range kinds {
			kind := kinds[(i+k)%len(kinds)]
			if ops[kind] == nil {
				return nil, fmt.Errorf("unknown kind %q (want some of %s)", kind, strings.Join(gatesKinds, ","))
			}
			e, err := ops[kind](ctx, i)
			if err != nil {
				return nil, fmt.Errorf("iteration %d %s: %w", i, kind, err)
			}
			if i >= cfg.warmup {
				lat[kind] = append(lat[kind], float64(e.Microseconds())/1000)
			}
		}
	}
	stats := map[string]any{}
	p50 := map[string]float64{}
	for _, kind := range kinds {
		p50[kind] = quantile(lat[kind], 0.5)
		stats[kind] = map[string]float64{"p50": p50[kind], "p99": quantile(lat[kind], 0.99)}
	}
	ratios := map[string]float64{}
	for name, pair := range map[string][2]string{
		"promote-gated/promote":       {"promote-gated", "promote"},
		"release/promote":             {"release", "promote"},
		"release-gated/promote-gated": {"release-gated", "promote-gated"},
	} {
		if a, b := p50[pair[0]], p50[pair[1]]; a > 0 && b > 0 {
			ratios[name] = a / b
		}
	}
	return &Result{
		Metric: "ms", Value: p50[kinds[0]], HigherIsBetter: false,
		Seconds: time.Since(total).Seconds(), Ops: int64(cfg.iters),
		P50ms: p50[kinds[0]], P99ms: quantile(lat[kinds[0]], 0.99),
		Extra: map[string]any{
			"apps": s.apps, "layers": s.layers, "image_bytes": s.size,
			"warmup": cfg.warmup, "iterations": cfg.iters,
			"ms": lat, "stats_ms": stats, "ratios": ratios,
			"kinds": strings.Join(kinds, ","),
		},
	}, nil
}
