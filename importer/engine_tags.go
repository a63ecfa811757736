package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/storage"
)

// tags imports a repository's tags, last (§7.5 step 5): an absent tag is
// written with put-if-absent (through the promotion commit in an
// immutable stage), a tag at the same digest is left alone, a tag at
// another digest is a conflict, replaced only with OverwriteMutable and
// compare-and-set on the version read. err stops the run.
func (e *engine) tags(ctx context.Context, j job, notImported map[digest.Digest]bool) error {
	stage, _ := config.StageOf(e.opts.Stages, j.repo)
	for _, t := range j.plan.Tags {
		if err := ctx.Err(); err != nil {
			return err
		}
		what := fmt.Sprintf("tag %s:%s", j.repo, t.Name)
		var bad error
		if notImported[t.Digest] {
			bad = &SkippedError{What: what, Cause: fmt.Errorf("it names %s, which is not imported", t.Digest)}
		} else {
			bad = e.tag(ctx, j, stage, t)
		}
		e.prog.done(1, 0)
		if bad != nil {
			e.t.count(tags, skipped)
			if err := e.fail(ctx, what, bad); err != nil {
				return err
			}
		}
	}
	return nil
}

// tag imports one tag; the error says why it is not imported (a
// conflict not overwritten is counted skipped and returns nil).
func (e *engine) tag(ctx context.Context, j job, stage config.Stage, t stocklayout.Tag) error {
	// A put-if-absent lost to a concurrent push: read again, once.
	for attempt := 0; ; attempt++ {
		st, err := e.meta.Tag(ctx, j.repo, t.Name)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			err := e.createTag(ctx, j, stage, t)
			if errors.Is(err, storage.ErrPreconditionFailed) && attempt == 0 {
				continue
			}
			return err
		case err != nil:
			return err
		case st.Digest == t.Digest:
			e.t.count(tags, present)
			return nil
		}
		c := Conflict{Tag: j.repo + ":" + t.Name, Stock: t.Digest, Slipway: st.Digest}
		switch {
		case stage.Immutable:
			c.Reason = "stage " + stage.Name + " is immutable: its tags are never re-pointed by an import"
		case stage.IsFixedTag(t.Name):
			c.Reason = "a fixed tag of stage " + stage.Name + ": never re-pointed"
		case !e.opts.OverwriteMutable:
			c.Reason = "--overwrite-mutable replaces it"
		case e.opts.DryRun:
			c.Overwritten = true
		default:
			err := e.meta.SetTag(ctx, j.repo, t.Name, t.Digest, "", st.ETag)
			switch {
			case errors.Is(err, storage.ErrPreconditionFailed):
				c.Reason = "it changed during the import (a concurrent write wins)"
			case err != nil:
				return err
			default:
				c.Overwritten = true
			}
		}
		e.t.conflict(c)
		if c.Overwritten {
			e.t.count(tags, imported)
		} else {
			e.t.count(tags, skipped)
		}
		return nil
	}
}

// createTag writes a tag Slipway does not have.
func (e *engine) createTag(ctx context.Context, j job, stage config.Stage, t stocklayout.Tag) error {
	if e.opts.DryRun {
		e.t.count(tags, imported)
		return nil
	}
	if !stage.Immutable {
		if err := e.meta.SetTag(ctx, j.repo, t.Name, t.Digest, "", ""); err != nil {
			return err
		}
		e.t.count(tags, imported)
		return nil
	}
	if e.opts.Tagger == nil {
		return fmt.Errorf("stage %s is immutable and this run has no promotion service to record the import", stage.Name)
	}
	source := fmt.Sprintf("import:%s/%s:%s", e.opts.SourceName, j.stock, t.Name)
	created, err := e.opts.Tagger.ImportTag(ctx, j.repo, t.Name, t.Digest, source, e.opts.Actor)
	if err != nil {
		return err
	}
	if created {
		e.t.count(tags, imported)
	} else {
		e.t.count(tags, present)
	}
	return nil
}
