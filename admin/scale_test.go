package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/admin/admintest"
)

// bigApp gives staging/big 2,000 tags, half of them in production too.
func bigApp(f *admintest.Fake, now time.Time) {
	for i := range 2000 {
		tag := fmt.Sprintf("1.%d.%d", i/100, i%100)
		d := admintest.Digest(tag)
		at := now.Add(-time.Duration(i) * time.Minute)
		f.Push("staging/big", tag, d, at)
		if i%2 == 0 {
			f.Push("production/big", tag, d, at.Add(time.Second))
		}
	}
	tags, _ := f.Tags(context.Background(), "staging/big")
	for _, ti := range tags {
		f.MarkStages("big", ti.Digest)
	}
}

func manyRepos(f *admintest.Fake, now time.Time) {
	for i := range 5000 {
		stage := "staging/"
		if i%3 == 0 {
			stage = "production/"
		}
		f.Push(fmt.Sprintf("%steam%02d/service-%04d", stage, i%40, i), "v1", admintest.Digest("x"), now)
	}
}

func TestRepositoryPage2000Tags(t *testing.T) {
	e := newEnv(t, nil)
	bigApp(e.fake, e.clock.Now())
	b := e.browser()
	b.login("ops", opsPass)
	start := time.Now()
	p := b.get("/admin/repositories/big")
	took := time.Since(start)
	wantStatus(t, p, http.StatusOK)
	// One page of 250 rows, half of them missing from production; the
	// counts are of the whole table.
	if n := strings.Count(p.body, "<tr class=\"gap\""); n != 125 {
		t.Fatalf("%d rows missing from production on page 1, want 125", n)
	}
	if n := strings.Count(p.body, `aria-label="Promote to production"`); n != 125 {
		t.Fatalf("%d promote buttons on page 1, want 125", n)
	}
	mustContain(t, p, "2000 tags", "1000 not in every stage", "Tags 1–250 of 2000", `rel="next"`)
	last := b.get("/admin/repositories/big?page=8")
	mustContain(t, last, "Tags 1751–2000 of 2000", `rel="prev"`)
	mustNotContain(t, last, `rel="next"`)
	// Every tag is on exactly one page.
	seen := map[string]bool{}
	for page := 1; page <= 8; page++ {
		body := b.get(fmt.Sprintf("/admin/repositories/big?page=%d", page)).body
		for _, m := range promoteButton.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Fatalf("tag %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
	}
	if len(seen) != 2000 {
		t.Fatalf("%d tags over the pages, want 2000", len(seen))
	}
	t.Logf("repository page, 2,000 tags: %d KiB in %s", len(p.body)>>10, took)
}

func TestRepositories5000(t *testing.T) {
	e := newEnv(t, nil)
	manyRepos(e.fake, e.clock.Now())
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/repositories?q=service-4")
	wantStatus(t, p, http.StatusOK)
	if n := strings.Count(p.body, "<tr><td><a "); n != 100 {
		t.Fatalf("%d rows", n)
	}
	mustContain(t, p, `rel="next"`)
	mustContain(t, b.get("/admin/"), `?stage=staging">3333</a>`, `?stage=production">1667</a>`)
}

// benchPage measures the server's time for one page, signed in, the
// request and the rendering included (no network: httptest recorder).
func benchPage(b *testing.B, seed func(*admintest.Fake, time.Time), path string) {
	benchPageWith(b, func(o *Options) { seed(o.Promote.(*admintest.Fake), time.Now()) }, path)
}

// benchPageWith is benchPage with the admin's options edited (the real
// promotion service in scale_real_test.go).
func benchPageWith(b *testing.B, edit func(*Options), path string) {
	e := newEnv(b, edit)
	br := e.browser()
	br.login("ops", opsPass)
	u := e.srv.URL + "/admin/"
	var cookie string
	for _, c := range br.c.Jar.Cookies(mustURL(u)) {
		cookie += c.Name + "=" + c.Value + "; "
	}
	var took []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Cookie", cookie)
		rec := httptest.NewRecorder()
		e.admin.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
		took = append(took, time.Since(start))
	}
	// With -benchtime 50x these are p50/p99 over 50 requests.
	slices.Sort(took)
	pct := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func BenchmarkRepositoryPage2000Tags(b *testing.B) { benchPage(b, bigApp, "/admin/repositories/big") }

func BenchmarkRepositories5000(b *testing.B) {
	benchPage(b, manyRepos, "/admin/repositories?q=service")
}
