package admin

import (
	"net/http"
	"strings"

	"github.com/slipway/slipway/promote"
)

// reposPerPage: the list asks the service for one page at a time, so it
// costs the same with 50 repositories or 5,000.
const reposPerPage = 100

type reposData struct {
	Query   string
	Stage   string
	Stages  []string
	Rows    []repoRow
	Next    string // link to the next page ("" on the last)
	IsFirst bool
}

type repoRow struct {
	Name, Stage, App string
}

// repositories serves GET /admin/repositories?q=&stage=&cursor=.
func (a *Admin) repositories(w http.ResponseWriter, r *http.Request, req *request) {
	q := r.URL.Query()
	search, stage, cursor := strings.TrimSpace(q.Get("q")), q.Get("stage"), q.Get("cursor")
	page, err := a.opts.Promote.Repositories(r.Context(), promote.RepositoryQuery{Search: search, Stage: stage, Limit: reposPerPage, Cursor: cursor})
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	d := reposData{Query: search, Stage: stage, IsFirst: cursor == "", Rows: make([]repoRow, 0, len(page.Repositories))}
	for _, s := range a.opts.Promote.Stages() {
		d.Stages = append(d.Stages, s.Name)
	}
	for _, ri := range page.Repositories {
		app := ri.App
		if app == "" {
			app = ri.Name
		}
		d.Rows = append(d.Rows, repoRow{Name: ri.Name, Stage: ri.Stage, App: app})
	}
	if page.NextCursor != "" {
		d.Next = pageURL("/admin/repositories", "cursor", page.NextCursor, "q", search, "stage", stage)
	}
	v := a.newView(r, req, "Repositories")
	v.Nav, v.Data = "repositories", d
	a.render(w, r, http.StatusOK, "repositories", v)
}
