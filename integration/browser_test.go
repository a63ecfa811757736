package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
)

// Browser tests drive the admin pages in real headless Chromium (Debian's
// `chromium`, which integration/scripts/setup.sh installs) with chromedp.
//
// Screenshots: with SLIPWAY_SCREENSHOTS=DIR set, each page is saved as
// DIR/<name>-1280.png and DIR/<name>-390.png (a desktop and a phone
// width). The README's are made with
//
//	SLIPWAY_SCREENSHOTS=$PWD/docs/screenshots go test -count=1 -run TestAdminBrowserDocker ./integration/
//
// Unset, nothing is written, so a CI run leaves the work tree clean.

// chromiumFlags are the flags the issue names, exactly; chromedp adds
// only its --remote-debugging-port, and the user-data dir is a fresh
// temp dir per test.
var chromiumFlags = []string{"headless", "no-sandbox", "disable-gpu", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync"}

// Widths every page is checked (and photographed) at.
const (
	desktopWidth = 1280
	phoneWidth   = 390
)

// newBrowser starts Chromium and returns a tab's context. It fails, never
// skips, when Chromium is missing.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: integration/scripts/setup.sh installs it (apt-get install chromium): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir())}
	for _, f := range chromiumFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// Start the browser now, so a failure to start says so.
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(desktopWidth, 900)); err != nil {
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	return ctx
}

// pageRun runs browser steps with a timeout, failing the test with what
// was being done and the page's text.
func pageRun(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	pageGet(t, ctx, what, chromedp.Steps(steps...))
}

// pageGet runs one action that returns a value, with a timeout.
func pageGet[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
	return v
}

// signInAsAdmin signs in to reg's admin pages with the admin's password.
func signInAsAdmin(t *testing.T, ctx context.Context, reg *harness.Registry) {
	t.Helper()
	pageRun(t, ctx, "signing in",
		chromedp.Navigate(reg.URL()+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), reg.Admin().Username),
		chromedp.SendKeys(chromedp.CSS("#password"), reg.Admin().Password),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#logout")))
}

func wantText(t *testing.T, ctx context.Context, subs ...string) {
	t.Helper()
	s := pageGet(t, ctx, "reading the page", chromedp.Text(chromedp.CSS("main")))
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("page lacks %q:\n%s", sub, s)
		}
	}
}

// attr is an attribute of the first element sel matches.
func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	return pageGet(t, ctx, "reading "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

// checkWidths renders the current page at the desktop and the phone
// width: at each, nothing may stick out sideways (wide tables scroll
// inside their box), and with SLIPWAY_SCREENSHOTS set a full-page
// screenshot is saved. It leaves the desktop width on.
func checkWidths(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("SLIPWAY_SCREENSHOTS")
	for _, w := range []int64{desktopWidth, phoneWidth} {
		what := fmt.Sprintf("%s at %d px", name, w)
		pageRun(t, ctx, what, chromedp.EmulateViewport(w, 900))
		scrollWidth := pageGet(t, ctx, what, chromedp.Evaluate[int64](`document.documentElement.scrollWidth`))
		if scrollWidth > w {
			t.Errorf("%s: the page is %d px wide (scrolls sideways)", what, scrollWidth)
		}
		if dir == "" {
			continue
		}
		shot := pageGet(t, ctx, what, chromedp.FullScreenshot(100)) // 100: PNG
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w)), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pageRun(t, ctx, "back to the desktop width", chromedp.EmulateViewport(desktopWidth, 900))
}

// flow is the walk through the pages.
type flow struct {
	base       string // "http://127.0.0.1:PORT"
	user, pass string
	app, tag   string // a staging tag production lacks at this digest
	digest     string // the staging tag's digest
	shots      bool   // photograph the pages (one test does)
}

// run logs in, opens the repository, promotes the tag to production,
// finds it in production and in History, rolls it back, and logs out.
func (f flow) run(t *testing.T, ctx context.Context) {
	t.Helper()
	shot := func(name string) {
		t.Helper()
		if f.shots {
			checkWidths(t, ctx, name)
		}
	}
	row := `tr[data-tag="` + f.tag + `"][data-digest="` + f.digest + `"]`

	pageRun(t, ctx, "opening the login page",
		chromedp.Navigate(f.base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#username")))
	shot("login")
	pageRun(t, ctx, "signing in",
		chromedp.SendKeys(chromedp.CSS("#username"), f.user),
		chromedp.SendKeys(chromedp.CSS("#password"), f.pass),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#logout")))
	wantText(t, ctx, "Overview", "staging", "production", "Health")
	shot("overview")

	pageRun(t, ctx, "opening the repository list",
		chromedp.Navigate(f.base+"/admin/repositories"),
		chromedp.WaitVisible(chromedp.CSS("table.repos")))
	wantText(t, ctx, "staging/"+f.app)
	shot("repositories")

	pageRun(t, ctx, "opening the repository",
		chromedp.Navigate(f.base+"/admin/repositories/"+f.app),
		chromedp.WaitVisible(chromedp.CSS(row)))
	// Production lacks the tag at this digest ("missing", or "other" when
	// the tag is there at another digest).
	missing := attr(t, ctx, row+` td[data-stage="production"]`, "class")
	if strings.Contains(missing, "present") {
		t.Fatalf("before promotion, production's cell of %s is %q", f.tag, missing)
	}
	shot("repository")

	pageRun(t, ctx, "clicking Promote",
		chromedp.Click(chromedp.CSS(row+` button.promote[data-to="production"]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm")))
	wantText(t, ctx, "Promote staging/"+f.app+":"+f.tag+"?", "production/"+f.app+":"+f.tag, "sha256:")
	shot("promote-confirm")

	pageRun(t, ctx, "confirming",
		chromedp.SendKeys(chromedp.CSS(`input[name="reason"]`), "browser test"),
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
		chromedp.WaitVisible(chromedp.CSS(row)))
	wantText(t, ctx, "Promoted staging/"+f.app+":"+f.tag+" to production/"+f.app+":"+f.tag)
	present := attr(t, ctx, row+` td[data-stage="production"]`, "class")
	if !strings.Contains(present, "present") {
		t.Fatalf("after promotion, production's cell of %s is %q", f.tag, present)
	}
	shot("repository-promoted")

	pageRun(t, ctx, "opening History",
		chromedp.Navigate(f.base+"/admin/history?repository="+f.app),
		chromedp.WaitVisible(chromedp.CSS("table.records")))
	wantText(t, ctx, "production/"+f.app+":"+f.tag, "promoted", "browser test", "Roll back")
	shot("history")

	pageRun(t, ctx, "clicking Roll back",
		chromedp.Click(chromedp.CSS("button.rollback")),
		chromedp.WaitVisible(chromedp.CSS("#confirm")))
	wantText(t, ctx, "Roll back production/"+f.app+":"+f.tag+"?")
	shot("rollback-confirm")
	pageRun(t, ctx, "confirming the rollback",
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")))
	wantText(t, ctx, "Rolled back production/"+f.app+":"+f.tag, "rolled_back")
	shot("history-rolled-back")

	pageRun(t, ctx, "opening the repository again",
		chromedp.Navigate(f.base+"/admin/repositories/"+f.app),
		chromedp.WaitVisible(chromedp.CSS(row)))
	if missing = attr(t, ctx, row+` td[data-stage="production"]`, "class"); strings.Contains(missing, "present") {
		t.Fatalf("after the rollback, production still has %s", f.tag)
	}

	if f.shots {
		pageRun(t, ctx, "creating a robot",
			chromedp.Navigate(f.base+"/admin/robots"),
			chromedp.WaitVisible(chromedp.CSS("#robot-name")))
		shot("robots")
		pageRun(t, ctx, "creating a robot",
			chromedp.SendKeys(chromedp.CSS("#robot-name"), "ci"),
			chromedp.SendKeys(chromedp.CSS(`textarea[name="repos"]`), "staging/*"),
			chromedp.Click(chromedp.CSS(`input[name="actions"][value="push"]`)),
			chromedp.Click(chromedp.CSS("#create-robot")),
			chromedp.WaitVisible(chromedp.CSS("#secret")))
		wantText(t, ctx, "robot$ci", "docker login", "shown only this once")
		shot("robot-created")
	}

	pageRun(t, ctx, "signing out",
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#username")))
	wantText(t, ctx, "You have signed out.")
	pageRun(t, ctx, "checking the session is gone",
		chromedp.Navigate(f.base+"/admin/repositories"),
		chromedp.WaitVisible(chromedp.CSS("#username")))
}

// TestAdminBrowserDocker is the browser test on the real server:
// an image pushed with the real Docker client to staging/web:1.0, then
// log in as the harness admin, open the repository, click Promote,
// confirm, see the tag in the production column and in History, roll
// back, log out.
func TestAdminBrowserDocker(t *testing.T) {
	reg := harness.Start(t)
	if harness.IsStock() {
		t.Skip("the stock registry has no admin pages")
	}
	resp, err := http.Get(reg.URL() + "/admin/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/login: %s: the server does not serve the admin pages (admin.New(...).Register in server.newServerWith, with the promotion service)", resp.Status)
	}
	tools := harness.NewTools(t)
	tools.RequireDocker()
	tools.DockerLogin(reg.Host, reg.Admin())
	// The release before: build A promoted to production/web:1.0. Then
	// build B is pushed as staging/web:1.0: the page shows production
	// lacking it, the browser promotes it, and rolls back to A.
	ref := reg.Ref("staging/web:1.0")
	app := imageFile{"/app.bin", 64 << 10}
	buildScratchImage(t, tools, ref, app)
	tools.Run("docker", "push", ref)
	if _, _, err := client(reg, reg.Admin()).Promote(context.Background(), promote.Request{Source: "staging/web:1.0", To: "production"}); err != nil {
		t.Fatalf("promoting build A: %v", err)
	}
	buildScratchImage(t, tools, ref, app) // build B: new random bytes
	pushed := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`), tools.Run("docker", "push", ref), "pushed digest")

	ctx := newBrowser(t)
	flow{base: reg.URL(), user: reg.Admin().Username, pass: reg.Admin().Password, app: "web", tag: "1.0", digest: pushed,
		shots: os.Getenv("SLIPWAY_SCREENSHOTS") != ""}.run(t, ctx)
}
