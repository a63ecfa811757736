package admin

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/promote"
)

// confirmData is the confirmation page of a promotion, a rollback or a
// tag deletion (tagdelete.go: TargetRepo:Tag of stage To, naming Digest).
type confirmData struct {
	Kind string // "promote", "rollback", "delete" or "release-rollback"
	// Promotion.
	Source     string
	Digest     digest.Digest
	To         string
	TargetRepo string
	Tag        string
	App        string
	Current    digest.Digest // what the target tag names now ("" none)
	Expect     string        // ExpectPrevious for the do-step
	Fixed      bool
	// Gate is what the target stage's gates say now (nil: not gated, or
	// not known; GateNote says why not).
	Gate     *gateBadge
	GateNote string
	// Rollback.
	Record *promote.Record
	Reason string
	// Release rollback ("release-rollback").
	Release *promote.Release
}

// maxReason bounds the reason a person types.
const maxReason = 1000

// promote serves POST /admin/promote. Without confirmed=1 it shows what
// will happen (source, digest, target stage and tag); with it, it
// promotes, guarded by the digest shown (ExpectDigest) and the target's
// state shown (ExpectPrevious), so the person gets exactly what they
// confirmed or a refusal.
func (a *Admin) promote(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	svc := a.opts.Promote
	f := r.PostForm
	d := confirmData{Kind: "promote", Source: f.Get("source"), To: f.Get("to"), Tag: f.Get("tag"),
		Digest: digest.Digest(f.Get("digest")), Reason: f.Get("reason")}
	// A Promote button of the repository page sends "source|to|digest".
	if pick := f.Get("pick"); pick != "" {
		parts := strings.Split(pick, "|")
		if len(parts) == 3 {
			d.Source, d.To, d.Digest = parts[0], parts[1], digest.Digest(parts[2])
		}
	}
	repo, srcTag, ok := strings.Cut(d.Source, ":")
	stages := svc.Stages()
	from, fromOK := config.StageOf(stages, repo)
	to, toOK := stageNamed(stages, d.To)
	if !ok || !names.ValidRepository(repo) || !fromOK || !toOK || repo == from.Prefix || d.Digest.Validate() != nil || len(d.Reason) > maxReason {
		a.errorPage(w, r, req, http.StatusBadRequest, "That promotion request is not valid",
			"It needs a source like \"staging/app:1.0\", its digest and a target stage. Go back to the repository page and use its Promote button.")
		return
	}
	if d.Tag == "" {
		d.Tag = srcTag
	}
	d.App = strings.TrimPrefix(repo, from.Prefix)
	d.TargetRepo = to.Prefix + d.App
	d.Fixed = to.IsFixedTag(d.Tag)
	if !svc.CanPromote(ctx, repo, to.Name) {
		a.forbidden(w, r, req, "Your account may not promote from "+repo+" to the "+to.Name+" stage: that needs pull and promote on "+
			repo+", and promote on "+d.TargetRepo+". Ask an administrator for these permissions.")
		return
	}
	v := a.newView(r, req, "Promote "+d.Source)
	v.Nav = "repositories"
	if f.Get("confirmed") != "1" {
		cur, err := a.currentDigest(r, d.TargetRepo, d.Tag)
		if err != nil {
			a.fail(w, r, req, err)
			return
		}
		d.Current, d.Expect = cur, string(cur)
		d.Gate, d.GateNote = a.targetGate(r, repo, d.Digest, to)
		if cur == "" {
			d.Expect = "none"
		}
		v.Data = &d
		a.render(w, r, http.StatusOK, "confirm", v)
		return
	}
	d.Expect = f.Get("expect_previous")
	if d.Expect != "none" && d.Expect != "" {
		d.Current = digest.Digest(d.Expect)
	}
	rec, created, err := svc.Promote(ctx, promote.Request{Source: d.Source, To: to.Name, Tag: d.Tag,
		ExpectDigest: d.Digest, ExpectPrevious: d.Expect, Reason: d.Reason})
	v.Data = &d
	if a.confirmFailed(w, r, req, v, err) {
		return
	}
	q := url.Values{"done": {rec.ID}}
	if !created {
		q.Set("noop", "1")
	}
	a.log.InfoContext(ctx, "promoted from the admin pages", "source", d.Source, "target", rec.Target, "by", req.user.Name, "created", created)
	http.Redirect(w, r, "/admin/repositories/"+d.App+"?"+q.Encode(), http.StatusSeeOther)
}

// currentDigest is what repo:tag names now ("" when the tag or the
// repository does not exist).
func (a *Admin) currentDigest(r *http.Request, repo, tag string) (digest.Digest, error) {
	d, _, err := a.opts.Promote.TagDigest(r.Context(), repo, tag)
	return d, err
}

func stageNamed(stages []config.Stage, name string) (config.Stage, bool) {
	for _, s := range stages {
		if s.Name == name {
			return s, true
		}
	}
	return config.Stage{}, false
}

// rollback serves POST /admin/rollback: without confirmed=1 it shows the
// record and what the tag goes back to; with it, it rolls back.
func (a *Admin) rollback(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	svc := a.opts.Promote
	f := r.PostForm
	id, reason := f.Get("id"), f.Get("reason")
	if id == "" || len(reason) > maxReason {
		a.errorPage(w, r, req, http.StatusBadRequest, "That rollback request is not valid",
			"Use the Roll back button on the History page.")
		return
	}
	rec, err := svc.Get(ctx, id)
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	if !svc.CanRollback(ctx, rec) {
		a.forbidden(w, r, req, "This promotion of "+rec.Target+" cannot be rolled back by your account.")
		return
	}
	d := confirmData{Kind: "rollback", Record: &rec, Reason: reason, App: rec.App, Tag: rec.Tag}
	v := a.newView(r, req, "Roll back "+rec.Target)
	v.Nav, v.Data = "history", &d
	if f.Get("confirmed") != "1" {
		a.render(w, r, http.StatusOK, "confirm", v)
		return
	}
	done, err := svc.Rollback(ctx, id, reason)
	if a.confirmFailed(w, r, req, v, err) {
		return
	}
	a.log.InfoContext(ctx, "rolled back from the admin pages", "record", id, "target", done.Target, "by", req.user.Name)
	q := url.Values{"repository": {rec.App}, "tag": {rec.Tag}, "done": {done.ID}}
	http.Redirect(w, r, "/admin/history?"+q.Encode(), http.StatusSeeOther)
}

// confirmFailed answers a confirmed action that failed and reports
// whether it did: a refusal of the service (*promote.Error) in the
// confirmation page v, still there to go back from; any other error as
// an error page.
func (a *Admin) confirmFailed(w http.ResponseWriter, r *http.Request, req *request, v *view, err error) bool {
	var pe *promote.Error
	switch {
	case errors.As(err, &pe):
		v.Error, v.Failures = pe.Message, pe.Failures
		if len(pe.Failures) > 0 {
			// The list says each one; the message would repeat it.
			v.Error = "Refused: the gates did not pass. Nothing was changed."
		}
		a.render(w, r, pe.Status, "confirm", v)
	case err != nil:
		a.fail(w, r, req, err)
	default:
		return false
	}
	return true
}
