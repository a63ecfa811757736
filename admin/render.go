package admin

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/internal/httpbody"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"login", "error", "overview", "repositories", "repository", "confirm", "history", "robots", "robot_created", "evidence", "releases", "release", "oidc_continue"}

// pages holds one parsed template set per page.
type pages struct {
	byName map[string]*template.Template
	bufs   sync.Pool
}

func mustParsePages() *pages {
	p := &pages{byName: map[string]*template.Template{}, bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
	for _, name := range pageNames {
		t := template.New("layout.html").Funcs(funcs)
		p.byName[name] = template.Must(t.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return p
}

// view is what every page template gets.
type view struct {
	Title    string
	Nav      string // the menu entry to highlight
	LoggedIn bool
	User     auth.Principal
	Display  string // shown instead of User.Name ("": that)
	CSRF     string
	Flash    string // a message about what just happened
	Error    string // a message about what went wrong
	// Failures are the gates that refused what was asked, listed under
	// Error (which then only says what was refused).
	Failures []promote.GateFailure
	// Releases: the release pages are served (a menu entry).
	Releases bool
	Data     any
}

func (a *Admin) newView(_ *http.Request, req *request, title string) *view {
	v := &view{Title: title, Releases: a.opts.Releases != nil}
	if req != nil {
		v.LoggedIn, v.User, v.CSRF, v.Display = true, req.user, req.csrf, req.display
	}
	return v
}

// render executes a page into a buffer first, so that a template failure
// becomes an error page instead of half a page.
func (a *Admin) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	buf := a.pages.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer a.pages.bufs.Put(buf)
	if err := a.pages.byName[name].Execute(buf, v); err != nil {
		a.log.ErrorContext(r.Context(), "admin page failed to render", "page", name, "error", err.Error())
		http.Error(w, "This page could not be shown. The error was logged.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorData is the error page's content.
type errorData struct {
	Status  int
	Heading string
	Detail  string
}

// errorPage answers status with a page that says in words what happened.
func (a *Admin) errorPage(w http.ResponseWriter, r *http.Request, req *request, status int, heading, detail string) {
	v := a.newView(r, req, heading)
	v.Data = errorData{Status: status, Heading: heading, Detail: detail}
	a.render(w, r, status, "error", v)
}

// formError answers a form that could not be read (too large, too slow,
// malformed): nothing was done.
func (a *Admin) formError(w http.ResponseWriter, r *http.Request, req *request, e *httpbody.Error) {
	heading := "That form could not be read"
	switch e.Status {
	case http.StatusRequestEntityTooLarge:
		heading = "That form is too large"
	case http.StatusRequestTimeout:
		heading = "That form took too long to arrive"
	}
	a.errorPage(w, r, req, e.Status, heading, "Nothing was changed. Go back, reload the page and try again.")
}

func (a *Admin) notFound(w http.ResponseWriter, r *http.Request, req *request) {
	a.errorPage(w, r, req, http.StatusNotFound, "Page not found",
		"There is nothing at "+r.URL.Path+". It may have been removed, or the address may be mistyped.")
}

func (a *Admin) forbidden(w http.ResponseWriter, r *http.Request, req *request, detail string) {
	a.errorPage(w, r, req, http.StatusForbidden, "You may not do this", detail)
}

// fail turns a service error into a page: refusals with their own message,
// storage outages as such, anything else as a short apology (the details
// go to the log, never to the page).
func (a *Admin) fail(w http.ResponseWriter, r *http.Request, req *request, err error) {
	var pe *promote.Error
	switch {
	case errors.As(err, &pe):
		a.errorPage(w, r, req, pe.Status, headingFor(pe.Status), pe.Message)
	case errors.Is(err, auth.ErrForbidden):
		a.forbidden(w, r, req, "Only administrators may do this.")
	case errors.Is(err, storage.ErrUnavailable):
		a.errorPage(w, r, req, http.StatusServiceUnavailable, "Storage is unavailable",
			"The registry cannot reach its storage right now. Try again in a minute.")
	default:
		a.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "error", err.Error())
		a.errorPage(w, r, req, http.StatusInternalServerError, "Something went wrong",
			"The request failed on the server. It was logged; try again, and tell an administrator if it keeps failing.")
	}
}

func headingFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "That request is not valid"
	case http.StatusUnauthorized:
		return "Please sign in"
	case http.StatusForbidden:
		return "You may not do this"
	case http.StatusNotFound:
		return "Not found"
	case http.StatusConflict:
		return "Refused"
	case http.StatusServiceUnavailable:
		return "Unavailable"
	}
	if status >= 500 {
		return "Something went wrong"
	}
	return "Refused"
}

// staticHandler serves the embedded CSS and JavaScript.
func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.StripPrefix("/admin/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

var funcs = template.FuncMap{
	"short":     shortDigest,
	"digestAlg": func(d digest.Digest) string { a, _, _ := strings.Cut(shortDigest(d), ":"); return a },
	"digestHex": func(d digest.Digest) string { _, h, _ := strings.Cut(shortDigest(d), ":"); return h },
	"size":      humanSize,
	"when":      when,
	"whenp":     func(t *time.Time) string { return whenPtr(t) },
	"join":      strings.Join,
	"duration":  humanDuration,
	"repoPath":  func(app string) string { return "/admin/repositories/" + app },
	"hasPrefix": strings.HasPrefix,
	"dict":      dict,
	"keyIDs":    keyIDs,
}

// dict builds a map for a sub-template from key, value pairs.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict needs key, value pairs")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict keys must be strings")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// shortDigest is "sha256:" and 12 hex digits: enough to tell images apart
// at a glance; the copy button copies the whole digest.
func shortDigest(d digest.Digest) string {
	s := string(d)
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) <= 12 {
		return s
	}
	return alg + ":" + hex[:12]
}

func humanSize(n int64) string {
	switch {
	case n <= 0:
		return "—"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return when(*t)
}

// humanDuration says a wait or an uptime in words: "3 minutes".
func humanDuration(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d < time.Minute:
		return plural(int(d.Round(time.Second)/time.Second), "second")
	case d < time.Hour:
		return plural(int(d.Round(time.Minute)/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " " + plural(int(d%time.Hour/time.Minute), "minute")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

// pageURL is path with the non-empty values of the name, value pairs kv as
// its query (links between pages keep only the filters in use).
func pageURL(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
