package admin

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
)

// deleteTag serves POST /admin/tags/delete. Without confirmed=1 it shows
// the tag, its digest and what deleting it means; with it, it deletes,
// guarded by the digest shown, so the person deletes exactly what they
// confirmed or gets a refusal in words.
func (a *Admin) deleteTag(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	f := r.PostForm
	d := confirmData{Kind: "delete", TargetRepo: f.Get("repo"), Tag: f.Get("tag"), Digest: digest.Digest(f.Get("digest"))}
	// A Delete button of the repository page sends "repo|tag|digest".
	if pick := f.Get("pick"); pick != "" {
		if parts := strings.Split(pick, "|"); len(parts) == 3 {
			d.TargetRepo, d.Tag, d.Digest = parts[0], parts[1], digest.Digest(parts[2])
		}
	}
	st, inStage := config.StageOf(a.opts.Promote.Stages(), d.TargetRepo)
	if a.opts.Tags == nil || !inStage || d.TargetRepo == st.Prefix || !names.ValidRepository(d.TargetRepo) ||
		!names.ValidTag(d.Tag) || d.Digest.Validate() != nil {
		a.errorPage(w, r, req, http.StatusBadRequest, "That delete request is not valid",
			"It needs a repository, one of its tags and the tag's digest. Go back to the repository page and use a tag's Delete button.")
		return
	}
	d.App, d.To = strings.TrimPrefix(d.TargetRepo, st.Prefix), st.Name
	if st.Immutable {
		a.forbidden(w, r, req, d.TargetRepo+" is in the immutable stage "+st.Name+": nobody deletes tags there, only promotion writes.")
		return
	}
	if !a.opts.Tags.CanDeleteTag(ctx, d.TargetRepo) {
		a.forbidden(w, r, req, "Your account may not delete tags of "+d.TargetRepo+": that needs delete on it. Ask an administrator for this permission.")
		return
	}
	v := a.newView(r, req, "Delete "+d.TargetRepo+":"+d.Tag)
	v.Nav, v.Data = "repositories", &d
	if f.Get("confirmed") != "1" {
		a.render(w, r, http.StatusOK, "confirm", v)
		return
	}
	if a.confirmFailed(w, r, req, v, a.opts.Tags.DeleteTag(ctx, d.TargetRepo, d.Tag, d.Digest)) {
		return
	}
	a.log.InfoContext(ctx, "tag deleted from the admin pages", "repository", d.TargetRepo, "tag", d.Tag, "digest", d.Digest.String(), "by", req.user.Name)
	q := url.Values{"deleted": {d.To + ":" + d.Tag}}
	http.Redirect(w, r, "/admin/repositories/"+d.App+"?"+q.Encode(), http.StatusSeeOther)
}

// markDeletable sets CanDelete on the columns whose tags the caller may
// delete (asked once per stage) and reports whether any may.
func (a *Admin) markDeletable(r *http.Request, cols []stageCol) bool {
	if a.opts.Tags == nil {
		return false
	}
	some := false
	for i := range cols {
		c := &cols[i]
		c.CanDelete = c.Exists && !c.Immutable && a.opts.Tags.CanDeleteTag(r.Context(), c.Repo)
		some = some || c.CanDelete
	}
	return some
}

// deletedMessage says which tag the browser was sent back after deleting
// (?deleted=<stage>:<tag>), only when that tag is indeed gone, so a link
// cannot make the page claim a deletion that did not happen.
func (a *Admin) deletedMessage(r *http.Request, stages []config.Stage, app string) string {
	stage, tag, ok := strings.Cut(r.URL.Query().Get("deleted"), ":")
	st, found := stageNamed(stages, stage)
	if !ok || !found || !names.ValidTag(tag) {
		return ""
	}
	repo := st.Prefix + app
	if _, exists, err := a.opts.Promote.TagDigest(r.Context(), repo, tag); err != nil || exists {
		return ""
	}
	return "Deleted the tag " + repo + ":" + tag + "."
}
