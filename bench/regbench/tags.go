package main

// Scenarios tags-100, tags-1000, tags-10000: what reading a repository's
// tags with their digests costs as the repository grows.
//
//	setup  one image pushed to staging/<prefix>-tags-<N>, then tagged N
//	       times (t00000, t00001, …: manifest PUTs by tag, -workers at a
//	       time, 16 by default; their time goes to stderr);
//	       kept in the state directory, so a second setup does nothing
//	run    -warmup + -iterations rounds, each one
//	         api    GET /api/v1/repositories/staging/<app>/tags (Basic auth),
//	                checked to list N tags
//	         admin  GET /admin/repositories/<app> (signed in once, before),
//	                checked to count N tags
//	       in alternating order; value is the api's p50 (ms), extra holds
//	       p50/p99 of both.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

type tagsScenario struct {
	tags int
}

type tagsState struct {
	Repo string `json:"repo"`
	App  string `json:"app"`
	Tags int    `json:"tags"`
}

func (s *tagsScenario) app(cfg *config) string {
	return fmt.Sprintf("%s-tags-%d", cfg.repoPrefix, s.tags)
}

func (s *tagsScenario) setup(ctx context.Context, c *client, cfg *config) error {
	var st tagsState
	if ok, err := loadState(cfg, &st); err != nil || (ok && st.Tags == s.tags) {
		return err
	}
	app := s.app(cfg)
	repo := "staging/" + app
	_, raw, err := pushImage(ctx, c, cfg, repo, "t00000", []blob{newBlob([]byte("tags " + app))}, 1)
	if err != nil {
		return err
	}
	workers := def(cfg.workers, 16)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := 1; i < s.tags; i++ {
		g.Go(func() error {
			_, err := c.putManifest(gctx, repo, fmt.Sprintf("t%05d", i), ociManifest, raw)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(os.Stderr, "regbench %s: %d manifest PUTs by tag, %d at a time, in %.1f s (%.2f ms each)\n",
		cfg.scenario, s.tags-1, workers, took.Seconds(), ms(took)/float64(max(s.tags-1, 1))*float64(workers))
	return saveState(cfg, tagsState{Repo: repo, App: app, Tags: s.tags})
}

func (s *tagsScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	var st tagsState
	if err := setupState(cfg, &st); err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Transport: newTransport(), Jar: jar}
	if err := adminSignIn(ctx, hc, c, cfg); err != nil {
		return nil, err
	}
	get := func(path string, basic bool, check func([]byte) error) (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
		if err != nil {
			return 0, err
		}
		if basic {
			req.SetBasicAuth(cfg.user, cfg.password)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %d, want 200", path, resp.StatusCode)
		}
		if err == nil {
			err = check(b)
		}
		return elapsed, err
	}
	api := func() (time.Duration, error) {
		return get("/api/v1/repositories/"+st.Repo+"/tags", true, func(b []byte) error {
			var res struct {
				Tags []json.RawMessage `json:"tags"`
			}
			if err := json.Unmarshal(b, &res); err != nil || len(res.Tags) != st.Tags {
				return fmt.Errorf("tags API listed %d tags, want %d (%v)", len(res.Tags), st.Tags, err)
			}
			return nil
		})
	}
	admin := func() (time.Duration, error) {
		return get("/admin/repositories/"+st.App, false, func(b []byte) error {
			if want := fmt.Sprintf(">%d tags", st.Tags); !strings.Contains(string(b), want) {
				return fmt.Errorf("admin repository page does not count %d tags", st.Tags)
			}
			return nil
		})
	}
	var apiMS, adminMS []float64
	start := time.Now()
	for i := 0; i < cfg.warmup+cfg.iters; i++ {
		ops := []func() (time.Duration, error){api, admin}
		if i%2 == 1 {
			ops[0], ops[1] = ops[1], ops[0]
		}
		var took [2]time.Duration
		for j, op := range ops {
			d, err := op()
			if err != nil {
				return nil, err
			}
			took[j] = d
		}
		if i%2 == 1 {
			took[0], took[1] = took[1], took[0]
		}
		if i >= cfg.warmup {
			apiMS = append(apiMS, ms(took[0]))
			adminMS = append(adminMS, ms(took[1]))
		}
	}
	return &Result{
		Metric: "ms", Value: quantile(apiMS, 0.5), Seconds: time.Since(start).Seconds(),
		Ops: int64(len(apiMS) + len(adminMS)), P50ms: quantile(apiMS, 0.5), P99ms: quantile(apiMS, 0.99),
		Extra: map[string]any{
			"tags": st.Tags, "api_p50_ms": quantile(apiMS, 0.5), "api_p99_ms": quantile(apiMS, 0.99),
			"admin_p50_ms": quantile(adminMS, 0.5), "admin_p99_ms": quantile(adminMS, 0.99),
		},
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// adminSignIn signs hc in to the admin pages as cfg.user (the login
// form's CSRF nonce comes in a cookie and the form).
func adminSignIn(ctx context.Context, hc *http.Client, c *client, cfg *config) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/admin/login"), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(b)
	if m == nil {
		return fmt.Errorf("GET /admin/login: %d, no csrf field", resp.StatusCode)
	}
	form := url.Values{"username": {cfg.user}, "password": {cfg.password}, "csrf": {string(m[1])}, "next": {"/admin/"}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.url("/admin/login"), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = hc.Do(req)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /admin/login: %d (after redirects), want 200", resp.StatusCode)
	}
	return nil
}
