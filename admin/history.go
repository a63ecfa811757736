package admin

import (
	"context"
	"net/http"
	"strings"

	"github.com/slipway/slipway/promote"
)

// historyPerPage: ledger records per page.
const historyPerPage = 50

type historyData struct {
	Repository, Tag string
	Rows            []recordRow
	Next            string
}

// recordRow is a ledger record and whether the caller may roll it back.
type recordRow struct {
	promote.Record
	CanRollback bool
}

// history serves GET /admin/history?repository=&tag=&cursor=: the ledger,
// newest first.
func (a *Admin) history(w http.ResponseWriter, r *http.Request, req *request) {
	q := r.URL.Query()
	repo, tag, cursor := strings.TrimSpace(q.Get("repository")), strings.TrimSpace(q.Get("tag")), q.Get("cursor")
	page, err := a.opts.Promote.History(r.Context(), promote.Query{Repository: repo, Tag: tag, Limit: historyPerPage, Cursor: cursor})
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	d := historyData{Repository: repo, Tag: tag, Rows: a.recordRows(r.Context(), page.Records, true)}
	if page.NextCursor != "" {
		d.Next = pageURL("/admin/history", "cursor", page.NextCursor, "repository", repo, "tag", tag)
	}
	title := "History"
	if repo != "" {
		title += " of " + repo
		if tag != "" {
			title += ":" + tag
		}
	}
	v := a.newView(r, req, title)
	v.Nav, v.Data = "history", d
	v.Flash = a.doneMessage(r)
	a.render(w, r, http.StatusOK, "history", v)
}

// recordRows pairs records with the caller's right to roll each back
// (asked only where the page shows the button).
func (a *Admin) recordRows(ctx context.Context, recs []promote.Record, withRollback bool) []recordRow {
	rows := make([]recordRow, len(recs))
	for i, rec := range recs {
		rows[i].Record = rec
		if withRollback {
			rows[i].CanRollback = a.opts.Promote.CanRollback(ctx, rec)
		}
	}
	return rows
}
