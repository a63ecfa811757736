package admin

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/slipway/slipway/promote"
)

// releasesPerPage: releases listed per page.
const releasesPerPage = 50

// maxReleaseImages bounds the images one release form may name.
const maxReleaseImages = 100

// releasesData is the release list and the form that creates one.
type releasesData struct {
	Rows []promote.Release
	Next string
	// Targets are the stages a release can go to (those promoted into).
	Targets []string
	Form    releaseForm
}

// releaseForm is what the create form sent, kept when it is refused.
type releaseForm struct {
	To, Images, Reason string
}

// releaseData is one release's page.
type releaseData struct {
	promote.Release
	CanRollback bool
}

// releases serves GET /admin/releases?cursor=: newest first.
func (a *Admin) releases(w http.ResponseWriter, r *http.Request, req *request) {
	if a.opts.Releases == nil {
		a.notFound(w, r, req)
		return
	}
	a.releaseList(w, r, req, http.StatusOK, releaseForm{}, nil)
}

// releaseList renders the list with the create form (f, refused with
// failures and v.Error when status is not 200).
func (a *Admin) releaseList(w http.ResponseWriter, r *http.Request, req *request, status int, f releaseForm, refusal *promote.Error) {
	page, err := a.opts.Releases.Releases(r.Context(), releasesPerPage, r.URL.Query().Get("cursor"))
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	d := releasesData{Rows: page.Releases, Form: f}
	if page.NextCursor != "" {
		d.Next = pageURL("/admin/releases", "cursor", page.NextCursor)
	}
	for _, s := range a.opts.Promote.Stages() {
		if len(s.PromoteFrom) > 0 {
			d.Targets = append(d.Targets, s.Name)
		}
	}
	v := a.newView(r, req, "Releases")
	v.Nav = "releases"
	if refusal != nil {
		v.Error, v.Failures = refusal.Message, refusal.Failures
		if len(v.Failures) > 0 {
			// The list says each one; the message would repeat it.
			v.Error = "Nothing was released: the gates of " + f.To + " refused these images."
		}
	}
	v.Data = d
	a.render(w, r, status, "releases", v)
}

// createRelease serves POST /admin/releases: every image named in the
// form (one "repository:tag [target tag]" a line) into one stage, or
// none; the refusal is shown above the form, which keeps what was typed.
func (a *Admin) createRelease(w http.ResponseWriter, r *http.Request, req *request) {
	if a.opts.Releases == nil {
		a.notFound(w, r, req)
		return
	}
	f := releaseForm{To: r.PostForm.Get("to"), Images: r.PostForm.Get("images"), Reason: r.PostForm.Get("reason")}
	var images []promote.ReleaseImage
	bad := false
	for _, line := range strings.Split(f.Images, "\n") {
		switch fields := strings.Fields(line); len(fields) {
		case 0:
		case 1:
			images = append(images, promote.ReleaseImage{Source: fields[0]})
		case 2:
			images = append(images, promote.ReleaseImage{Source: fields[0], Tag: fields[1]})
		default:
			bad = true
		}
	}
	if bad || f.To == "" || len(images) == 0 || len(images) > maxReleaseImages || len(f.Reason) > maxReason {
		a.releaseList(w, r, req, http.StatusBadRequest, f, &promote.Error{Message: "A release needs a target stage and one image a line, like \"staging/api:1.4\" " +
			"(optionally followed by the tag it gets in the target), at most 100."})
		return
	}
	rel, err := a.opts.Releases.CreateRelease(r.Context(), promote.ReleaseRequest{To: f.To, Images: images, Reason: f.Reason})
	var pe *promote.Error
	switch {
	case errors.As(err, &pe):
		a.releaseList(w, r, req, pe.Status, f, pe)
		return
	case err != nil:
		a.fail(w, r, req, err)
		return
	}
	a.log.InfoContext(r.Context(), "release created from the admin pages", "release", rel.ID, "stage", rel.Stage, "images", len(rel.Members), "by", req.user.Name)
	http.Redirect(w, r, "/admin/releases/"+url.PathEscape(rel.ID)+"?done=1", http.StatusSeeOther)
}

// release serves GET /admin/releases/<id>?done=: the members, and the
// Rollback button.
func (a *Admin) release(w http.ResponseWriter, r *http.Request, req *request) {
	if a.opts.Releases == nil {
		a.notFound(w, r, req)
		return
	}
	ctx := r.Context()
	rel, err := a.opts.Releases.GetRelease(ctx, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	v := a.newView(r, req, "Release "+rel.ID)
	v.Nav, v.Data = "releases", releaseData{Release: rel, CanRollback: a.opts.Releases.CanRollbackRelease(ctx, rel)}
	if r.URL.Query().Get("done") != "" {
		// Said from the release itself, so a link cannot forge it.
		v.Flash = releaseMessage(rel)
	}
	a.render(w, r, http.StatusOK, "release", v)
}

func releaseMessage(rel promote.Release) string {
	if rel.RollbackOf != "" {
		return "Rolled back release " + rel.RollbackOf + ": its images are back to what they were before it."
	}
	n := len(rel.Members)
	if n == 1 {
		return "Released 1 image to " + rel.Stage + "."
	}
	return "Released " + strconv.Itoa(n) + " images to " + rel.Stage + "."
}

// rollbackRelease serves POST /admin/releases/rollback: without
// confirmed=1 it shows what every member goes back to; with it, it rolls
// the release back as one new release.
func (a *Admin) rollbackRelease(w http.ResponseWriter, r *http.Request, req *request) {
	if a.opts.Releases == nil {
		a.notFound(w, r, req)
		return
	}
	ctx := r.Context()
	svc := a.opts.Releases
	f := r.PostForm
	id, reason := f.Get("id"), f.Get("reason")
	if id == "" || len(reason) > maxReason {
		a.errorPage(w, r, req, http.StatusBadRequest, "That rollback request is not valid",
			"Use the Roll back button of the release's page.")
		return
	}
	rel, err := svc.GetRelease(ctx, id)
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	if !svc.CanRollbackRelease(ctx, rel) {
		a.forbidden(w, r, req, "Release "+rel.ID+" cannot be rolled back by your account: that needs pull and promote on every repository it changed, and a complete release.")
		return
	}
	d := confirmData{Kind: "release-rollback", Release: &rel, Reason: reason}
	v := a.newView(r, req, "Roll back release "+rel.ID)
	v.Nav, v.Data = "releases", &d
	if f.Get("confirmed") != "1" {
		a.render(w, r, http.StatusOK, "confirm", v)
		return
	}
	done, err := svc.RollbackRelease(ctx, id, reason)
	if a.confirmFailed(w, r, req, v, err) {
		return
	}
	a.log.InfoContext(ctx, "release rolled back from the admin pages", "release", id, "as", done.ID, "by", req.user.Name)
	http.Redirect(w, r, "/admin/releases/"+url.PathEscape(done.ID)+"?done=1", http.StatusSeeOther)
}
