package admin

import (
	"context"
	"time"
)

// gcCard is the overview's garbage collection card: the last finished
// run, and the storage used as that run counted it.
type gcCard struct {
	Shown    bool // Options.LastGC is set
	Ran      bool // a finished run exists
	Failed   bool // it could not be read
	Finished time.Time
	DryRun   bool
	Freed    int64 // bytes (in a dry run: that it would free)
	Objects  int64
	Used     int64  // bytes the run examined, less what it freed
	Error    string // the run's own error, for administrators
	Broke    bool   // the run ended with an error
}

// gcCard reads the last run. Errors (addresses, key names) are shown to
// administrators only (GET /api/v1/gc/runs has them too); others see
// that the run failed.
func (a *Admin) gcCard(ctx context.Context, admin bool) gcCard {
	if a.opts.LastGC == nil {
		return gcCard{}
	}
	c := gcCard{Shown: true}
	rep, ok, err := a.opts.LastGC(ctx)
	if err != nil {
		a.log.WarnContext(ctx, "admin overview: reading the last gc run", "error", err.Error())
		c.Failed = true
		return c
	}
	if !ok {
		return c
	}
	c.Ran, c.Finished, c.DryRun, c.Broke = true, rep.Finished, rep.DryRun, rep.Error != ""
	if admin {
		c.Error = rep.Error
	}
	c.Freed, c.Objects, c.Used = rep.Freed.Bytes, rep.Freed.Objects, rep.Examined.Bytes
	if !rep.DryRun {
		c.Used -= rep.Freed.Bytes
	}
	return c
}
