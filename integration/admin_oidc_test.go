package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestAdminOIDCSignIn signs in to the admin pages of the real server
// through a real OpenID provider (zitadel/oidc's example provider, built
// from integration/internal/oidcprovider, on loopback), in Chromium, on
// the provider's own login page: alice, in the admin group, manages
// robots; bob, whose group grants pull and promote on staging/*, sees the
// staging repositories only and gets the forbidden page for robots. A
// forged callback (wrong state) gets the error page, and signing out goes
// through the provider's end_session endpoint.
func TestAdminOIDCSignIn(t *testing.T) {
	if harness.IsStock() {
		t.Skip("the stock registry has no admin pages")
	}
	// The provider is on another site than Slipway (localhost, not
	// 127.0.0.1), as in production: the browser comes back with a
	// cross-site navigation, which SameSite=Strict cookies do not follow.
	opPort := harness.FreePort(t)
	issuer := fmt.Sprintf("http://localhost:%d/", opPort)
	reg := harness.StartOpts(t, harness.Options{ExtraConfig: fmt.Sprintf(`admin:
  oidc:
    issuer: %q
    name: "Test IdP"
    client_id: slipway
    client_secret: slipway-secret
    admin_groups: [slipway-admins]
    grants:
      qa-team:
        - repos: "staging/*"
          actions: [pull, promote]
`, issuer)})
	opLog := startAdminOIDCProvider(t, opPort, reg.URL()+"/admin/oidc/callback", reg.URL()+"/admin/login?why=out")

	// Something for grants to show: bob may see the first, not the second.
	for _, ref := range []string{"staging/web:1", "it/private:1"} {
		img := ociImage(t, 1, 1024, v1.Platform{OS: "linux", Architecture: "amd64"})
		if err := remote.Write(parseRef(t, reg.Ref(ref)), img, as(reg.Admin())); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}

	ctx := newBrowser(t)
	host := fmt.Sprintf("localhost:%d", opPort)

	pageRun(t, ctx, "opening the login page", chromedp.Navigate(reg.URL()+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#oidc-signin")))
	checkWidths(t, ctx, "login-oidc")
	adminOIDCSignIn(t, ctx, reg.URL(), "alice", "alice-password")
	who := pageGet(t, ctx, "reading who is signed in", chromedp.Text(chromedp.CSS("header .who span")))
	if !strings.Contains(who, "Alice Admin (admin)") {
		t.Fatalf("header says %q, want Alice Admin (admin)", who)
	}
	if name := attr(t, ctx, "header .who span", "title"); name != "signed in as oidc:"+host+":u-alice" {
		t.Fatalf("principal %q", name)
	}
	pageRun(t, ctx, "opening the robots page",
		chromedp.Navigate(reg.URL()+"/admin/robots"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/admin/robots"]`)))
	wantText(t, ctx, "Robot accounts")
	pageRun(t, ctx, "opening the repositories", chromedp.Navigate(reg.URL()+"/admin/repositories"), chromedp.WaitVisible(chromedp.CSS("table.repos")))
	wantText(t, ctx, "staging/web", "it/private")

	pageRun(t, ctx, "signing out",
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#oidc-signin")))
	wantText(t, ctx, "You have signed out")
	if data, _ := os.ReadFile(opLog); !strings.Contains(string(data), "path=/end_session") {
		t.Fatalf("signing out did not go through the provider's end_session:\n%s", data)
	}

	adminOIDCSignIn(t, ctx, reg.URL(), "bob", "bob-password")
	who = pageGet(t, ctx, "reading who is signed in", chromedp.Text(chromedp.CSS("header .who span")))
	if !strings.Contains(who, "Bob Tester") || strings.Contains(who, "(admin)") {
		t.Fatalf("header says %q, want Bob Tester, not an admin", who)
	}
	pageRun(t, ctx, "opening the repositories", chromedp.Navigate(reg.URL()+"/admin/repositories"), chromedp.WaitVisible(chromedp.CSS("table.repos")))
	wantText(t, ctx, "staging/web")
	if s := pageGet(t, ctx, "reading the page", chromedp.Text(chromedp.CSS("main"))); strings.Contains(s, "it/private") {
		t.Fatalf("bob sees it/private, which no grant of his covers:\n%s", s)
	}
	pageRun(t, ctx, "opening the robots page", chromedp.Navigate(reg.URL()+"/admin/robots"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	wantText(t, ctx, "You may not do this", "Only administrators manage robot accounts")
	pageRun(t, ctx, "signing out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#oidc-signin")))

	// A forged answer: the browser started a sign-in, the callback comes
	// with another state.
	pageRun(t, ctx, "starting a sign-in",
		chromedp.Click(chromedp.CSS("#oidc-signin")),
		chromedp.WaitVisible(chromedp.CSS("#username")))
	pageRun(t, ctx, "presenting a forged callback",
		chromedp.Navigate(reg.URL()+"/admin/oidc/callback?code=stolen&state=forged"),
		chromedp.WaitVisible(chromedp.CSS("main h1")))
	wantText(t, ctx, "Sign-in through Test IdP failed", "state mismatch")
	pageRun(t, ctx, "opening the overview", chromedp.Navigate(reg.URL()+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#oidc-signin")))
}

// adminOIDCSignIn signs in through the provider's login page and waits for
// the admin pages.
func adminOIDCSignIn(t *testing.T, ctx context.Context, base, user, pass string) {
	t.Helper()
	pageRun(t, ctx, "opening the login page",
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#oidc-signin")))
	wantText(t, ctx, "Sign in with Test IdP")
	pageRun(t, ctx, "following Sign in with Test IdP to the provider",
		chromedp.Click(chromedp.CSS("#oidc-signin")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/login/username"] #username`)))
	pageRun(t, ctx, "signing in at the provider as "+user,
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#logout")))
	wantText(t, ctx, "Overview")
}

// startAdminOIDCProvider builds and starts integration/internal/oidcprovider
// on 127.0.0.1:port, as issuer http://localhost:port/, for one client
// coming back to redirect; it returns the path of its log.
func startAdminOIDCProvider(t *testing.T, port int, redirect, postLogout string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "oidcprovider")
	build := exec.Command("go", "build", "-o", bin, "./integration/internal/oidcprovider")
	build.Dir = harness.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the OpenID provider: %v\n%s", err, out)
	}
	logf, err := os.CreateTemp(harness.LogDir(), harness.Sanitize(t.Name())+"-oidcprovider-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(bin, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-issuer-host", "localhost", "-redirect", redirect, "-post-logout", postLogout)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "listening on http://localhost:") {
			data, _ := os.ReadFile(logf.Name())
			t.Fatalf("the OpenID provider did not start (%q):\n%s", line, data)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the OpenID provider did not start within 30s")
	}
	return logf.Name()
}
