package admin

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/promote"
)

// repoData is the repository page: one row per tag and digest, one column
// per stage.
type repoData struct {
	App     string
	Filter  string
	Stages  []stageCol
	Rows    []tagRow
	Missing int // rows some stage lacks
	Total   int
	// The rows shown are one page of the whole table: Rows[First-1:Last]
	// of Total, newest first; Prev and Next link the neighbours ("" for
	// none).
	First, Last int
	Prev, Next  string
	// CanPromote: some row has a Promote button.
	CanPromote bool
	// CanDelete: some stage column has Delete buttons.
	CanDelete bool
}

type stageCol struct {
	Name, Repo string
	Exists     bool
	Immutable  bool
	// CanDelete: the caller may delete this repository's tags (never in
	// an immutable stage).
	CanDelete bool
}

type tagRow struct {
	Tag       string
	Digest    digest.Digest
	Size      int64
	Platforms string
	Pushed    time.Time // the oldest write of this tag among the stages
	newest    time.Time
	Cells     []cell
	Actions   []promoteAction
	// Gap: some stage does not have this tag at this digest.
	Gap bool
	// Evidence links the digest's evidence page ("" without one); Gates
	// are the badges of the gated stages it may be promoted into;
	// GateNote says why they are missing (gates.go).
	Evidence string
	Gates    []gateBadge
	GateNote string
}

// cell is one stage's view of a row.
type cell struct {
	Present   bool // the stage's tag names this digest
	HasDigest bool // the stage holds the digest, under another tag
	Updated   time.Time
	Promoted  *promote.Record
}

// promoteAction is a Promote button: the caller may promote the row from
// one stage into another that does not have it.
type promoteAction struct {
	Source string // "staging/app:1.4.2"
	From   string
	To     string
	Tag    string
	Digest digest.Digest
}

// repository serves GET /admin/repositories/<app>?tag=&done=&noop=.
func (a *Admin) repository(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	svc := a.opts.Promote
	stages := svc.Stages()
	app := r.PathValue("app")
	if repo, dg, ok := digestPath(app); ok {
		a.evidence(w, r, req, repo, dg)
		return
	}
	// A full repository name ("staging/team/app") leads to its app.
	if s, ok := config.StageOf(stages, app); ok && len(app) > len(s.Prefix) {
		target := "/admin/repositories/" + strings.TrimPrefix(app, s.Prefix)
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	}
	if app == "" {
		http.Redirect(w, r, "/admin/repositories", http.StatusSeeOther)
		return
	}
	filter := strings.TrimSpace(r.URL.Query().Get("tag"))
	perStage := make([][]promote.TagInfo, len(stages))
	d := repoData{App: app, Filter: filter}
	all, err := svc.AppTags(ctx, app)
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	found := false
	for i, s := range stages {
		tags, exists := all[s.Name]
		found = found || exists
		d.Stages = append(d.Stages, stageCol{Name: s.Name, Repo: s.Prefix + app, Exists: exists, Immutable: s.Immutable})
		perStage[i] = tags
	}
	if !found {
		a.errorPage(w, r, req, http.StatusNotFound, "No such repository",
			"No stage has a repository for \""+app+"\". Check the name, or find it in the repository list.")
		return
	}
	d.Rows = mergeRows(stages, perStage, filter)
	d.Total = len(d.Rows)
	for _, row := range d.Rows {
		if row.Gap {
			d.Missing++
		}
	}
	d.paginate(r.URL.Query(), app)
	a.addActions(r, stages, d.Stages, d.Rows, app)
	a.addGates(ctx, stages, d.Stages, d.Rows)
	for _, row := range d.Rows {
		d.CanPromote = d.CanPromote || len(row.Actions) > 0
	}
	d.CanDelete = a.markDeletable(r, d.Stages)
	v := a.newView(r, req, app)
	v.Nav, v.Data = "repositories", d
	v.Flash = cmp.Or(a.doneMessage(r), a.deletedMessage(r, stages, app))
	a.render(w, r, http.StatusOK, "repository", v)
}

// mergeRows builds one row per tag and digest across the stages, newest
// first. Linear in the number of tags: a map from tag@digest to its row.
func mergeRows(stages []config.Stage, perStage [][]promote.TagInfo, filter string) []tagRow {
	index := map[string]int{}
	var rows []tagRow
	// Which digests each stage holds, under any tag (TagInfo.Stages).
	holds := make([]map[digest.Digest]bool, len(stages))
	stageIdx := map[string]int{}
	for i, s := range stages {
		holds[i] = map[digest.Digest]bool{}
		stageIdx[s.Name] = i
	}
	for i, tags := range perStage {
		for k := range tags {
			ti := &tags[k]
			for _, sn := range ti.Stages {
				if j, ok := stageIdx[sn]; ok {
					holds[j][ti.Digest] = true
				}
			}
			holds[i][ti.Digest] = true
			if filter != "" && !strings.Contains(ti.Tag, filter) {
				continue
			}
			key := ti.Tag + "@" + string(ti.Digest)
			n, ok := index[key]
			if !ok {
				n = len(rows)
				index[key] = n
				rows = append(rows, tagRow{Tag: ti.Tag, Digest: ti.Digest, Size: ti.Size,
					Platforms: strings.Join(ti.Platforms, ", "), Pushed: ti.UpdatedAt, Cells: make([]cell, len(stages))})
			}
			row := &rows[n]
			row.Cells[i] = cell{Present: true, Updated: ti.UpdatedAt, Promoted: ti.Promoted}
			if ti.UpdatedAt.Before(row.Pushed) {
				row.Pushed = ti.UpdatedAt
			}
			if ti.UpdatedAt.After(row.newest) {
				row.newest = ti.UpdatedAt
			}
		}
	}
	for n := range rows {
		row := &rows[n]
		for i := range row.Cells {
			if !row.Cells[i].Present {
				row.Gap = true
				row.Cells[i].HasDigest = holds[i][row.Digest]
			}
		}
	}
	slices.SortFunc(rows, func(x, y tagRow) int {
		if c := y.newest.Compare(x.newest); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(x.Tag, y.Tag), strings.Compare(string(x.Digest), string(y.Digest)))
	})
	return rows
}

// addActions puts a Promote button on each row a stage has and a stage it
// may be promoted into lacks, where the caller may promote along that
// edge. CanPromote is asked once per edge, not per row.
func (a *Admin) addActions(r *http.Request, stages []config.Stage, cols []stageCol, rows []tagRow, app string) {
	type edge struct{ from, to int }
	var edges []edge
	byName := map[string]int{}
	for i, s := range stages {
		byName[s.Name] = i
	}
	for to, s := range stages {
		for _, f := range s.PromoteFrom {
			from, ok := byName[f]
			if !ok || !cols[from].Exists {
				continue
			}
			if a.opts.Promote.CanPromote(r.Context(), stages[from].Prefix+app, s.Name) {
				edges = append(edges, edge{from, to})
			}
		}
	}
	if len(edges) == 0 {
		return
	}
	for n := range rows {
		row := &rows[n]
		for _, e := range edges {
			if row.Cells[e.from].Present && !row.Cells[e.to].Present {
				row.Actions = append(row.Actions, promoteAction{
					Source: stages[e.from].Prefix + app + ":" + row.Tag,
					From:   stages[e.from].Name, To: stages[e.to].Name, Tag: row.Tag, Digest: row.Digest,
				})
			}
		}
	}
}

// doneMessage says what the promotion or rollback the browser was sent
// back after did (?done=<record id>), read back from the ledger so the
// message cannot be forged into the page.
func (a *Admin) doneMessage(r *http.Request) string {
	id := r.URL.Query().Get("done")
	if id == "" {
		return ""
	}
	rec, err := a.opts.Promote.Get(r.Context(), id)
	if err != nil {
		return ""
	}
	switch {
	case rec.Outcome == promote.OutcomeNoop:
		return rec.Target + " already named " + shortDigest(rec.Digest) + ": nothing changed."
	case rec.Outcome == promote.OutcomeRolledBack:
		return "Rolled back " + rec.Target + " to " + shortDigest(rec.Digest) + "."
	}
	return "Promoted " + rec.Source + " to " + rec.Target + " (" + shortDigest(rec.Digest) + ")."
}

// rowsPerPage bounds the rows rendered at once: rendering is most of the
// page's cost (about 15 µs a row), and nobody reads 2,000 rows; the
// filter finds a tag, the pages walk the rest.
const rowsPerPage = 250

// paginate keeps the page ?page=N (1-based) of the rows and links its
// neighbours.
func (d *repoData) paginate(q url.Values, app string) {
	page, err := strconv.Atoi(q.Get("page"))
	pages := max(1, (len(d.Rows)+rowsPerPage-1)/rowsPerPage)
	if err != nil || page < 1 {
		page = 1
	}
	page = min(page, pages)
	start, end := (page-1)*rowsPerPage, min(page*rowsPerPage, len(d.Rows))
	d.First, d.Last = start+1, end
	d.Rows = d.Rows[start:end]
	link := func(p int) string {
		n := ""
		if p > 1 {
			n = strconv.Itoa(p)
		}
		return pageURL("/admin/repositories/"+app, "tag", d.Filter, "page", n)
	}
	if page > 1 {
		d.Prev = link(page - 1)
	}
	if page < pages {
		d.Next = link(page + 1)
	}
}
