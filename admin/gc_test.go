package admin

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/slipway/slipway/gc"
)

// The overview shows the last collection: when, what it freed, storage
// used (examined less freed), and its error to administrators only.
func TestOverviewShowsLastGC(t *testing.T) {
	rep := gc.Report{Run: "r1", Finished: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC),
		Examined: gc.Counts{Objects: 40, Bytes: 5 << 30}, Freed: gc.Counts{Objects: 12, Bytes: 1 << 30}}
	var ok = true
	var readErr error
	e := newEnv(t, func(o *Options) {
		o.LastGC = func(context.Context) (gc.Report, bool, error) { return rep, ok, readErr }
	})
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/")
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, "Garbage collection", "2026-03-01 11:00 UTC", "Freed", "1.00 GiB in 12 objects",
		"Storage used</dt><dd>4.00 GiB", "less what it freed")
	mustNotContain(t, p, "dry run", "gc-error")

	rep.DryRun, rep.Error = true, "gc: listing repositories: dial tcp 10.0.0.7:9000: refused"
	p = b.get("/admin/")
	mustContain(t, p, "(dry run)", "Would free", "Storage used</dt><dd>5.00 GiB", `id="gc-error">the run failed: an administrator can see why`)
	mustNotContain(t, p, "10.0.0.7")

	ops := e.browser()
	ops.login("ops", opsPass)
	mustContain(t, ops.get("/admin/"), `id="gc-error">gc: listing repositories: dial tcp 10.0.0.7:9000: refused`)

	ok = false
	mustContain(t, b.get("/admin/"), "No collection has run yet.")
	readErr = errors.New("s3: secret-bucket unreachable")
	p = b.get("/admin/")
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, "The last run could not be read")
	mustNotContain(t, p, "secret-bucket")
}

// Without a collector the card is not there at all.
func TestOverviewWithoutGC(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("dev", devPass)
	mustNotContain(t, b.get("/admin/"), "Garbage collection")
}
