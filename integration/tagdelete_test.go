package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
)

// TestTagDeleteCrane: `crane delete <repo>:<tag>` sends DELETE
// /v2/<repo>/manifests/<tag> with a delete-scoped token. Slipway removes
// that tag only: the other tag of the same digest still pulls completely
// with crane, and so does the digest. An unknown tag is MANIFEST_UNKNOWN;
// a tag in the immutable production stage is refused (DENIED, naming the
// stage), even to an admin, and still pulls afterwards.
func TestTagDeleteCrane(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3Backend}, testTagDeleteCrane)
}

func testTagDeleteCrane(t *testing.T, b backend) {
	reg := b.start(t)
	if harness.IsStock() {
		t.Skip("the stock registry has no stages")
	}
	tools := harness.NewTools(t)
	tools.CraneLogin(reg.Host, reg.User())
	img := ociImage(t, 2, 256<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
	want := mustDigest(t, img).String()
	if err := remote.Write(parseRef(t, reg.Ref("staging/tagdel:a")), img, as(reg.User())); err != nil {
		t.Fatalf("pushing staging/tagdel:a: %v", err)
	}
	tools.Run("crane", "tag", "--insecure", reg.Ref("staging/tagdel:a"), "b")

	tools.Run("crane", "delete", "--insecure", reg.Ref("staging/tagdel:a"))
	if out, err := tools.Exec(harness.Cmd{Args: []string{"crane", "digest", "--insecure", reg.Ref("staging/tagdel:a")}}); err == nil || !strings.Contains(out, "MANIFEST_UNKNOWN") {
		t.Fatalf("crane digest of the deleted tag: %v\n%s", err, out)
	}
	if got := strings.Fields(tools.Run("crane", "ls", "--insecure", reg.Ref("staging/tagdel"))); len(got) != 1 || got[0] != "b" {
		t.Fatalf("tags after deleting a: %q, want [b]", got)
	}
	// The other tag, and the digest, pull completely (every blob).
	for _, ref := range []string{reg.Ref("staging/tagdel:b"), reg.Ref("staging/tagdel@" + want)} {
		tools.Run("crane", "pull", "--insecure", "--format", "oci", ref, "pulled")
		if got := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", ref)); got != want {
			t.Fatalf("crane digest %s = %s, want %s", ref, got, want)
		}
	}
	if out, err := tools.Exec(harness.Cmd{Args: []string{"crane", "delete", "--insecure", reg.Ref("staging/tagdel:never")}}); err == nil || !strings.Contains(out, "MANIFEST_UNKNOWN") {
		t.Fatalf("crane delete of an unknown tag: %v\n%s", err, out)
	}

	if _, _, err := client(reg, reg.Admin()).Promote(context.Background(), promote.Request{Source: "staging/tagdel:b", To: "production"}); err != nil {
		t.Fatalf("promoting: %v", err)
	}
	tools.CraneLogin(reg.Host, reg.Admin())
	out, err := tools.Exec(harness.Cmd{Args: []string{"crane", "delete", "--insecure", reg.Ref("production/tagdel:b")}})
	if err == nil || !strings.Contains(out, "DENIED") || !strings.Contains(out, `immutable stage "production"`) {
		t.Fatalf("crane delete in production as an admin: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", reg.Ref("production/tagdel:b"))); got != want {
		t.Fatalf("production/tagdel:b = %s after a refused delete, want %s", got, want)
	}
}

// TestAdminBrowserTagDelete: in Chromium on the real server, the
// repository page has a Delete button in staging's cells and none in
// production's; deleting staging's tag "a" asks for confirmation, then
// the page says so, and the tag "b" of the same digest stays, in the page
// and through /v2/.
func TestAdminBrowserTagDelete(t *testing.T) {
	reg := harness.Start(t)
	if harness.IsStock() {
		t.Skip("the stock registry has no admin pages")
	}
	img := ociImage(t, 1, 64<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
	for _, tag := range []string{"a", "b"} {
		if err := remote.Write(parseRef(t, reg.Ref("staging/web2:"+tag)), img, as(reg.Admin())); err != nil {
			t.Fatalf("pushing %s: %v", tag, err)
		}
	}
	if _, _, err := client(reg, reg.Admin()).Promote(context.Background(), promote.Request{Source: "staging/web2:b", To: "production"}); err != nil {
		t.Fatalf("promoting: %v", err)
	}

	ctx := newBrowser(t)
	signInAsAdmin(t, ctx, reg)
	pageRun(t, ctx, "opening the repository",
		chromedp.Navigate(reg.URL()+"/admin/repositories/web2"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-tag="a"] td[data-stage="staging"] button.delete`)))
	if n := pageGet(t, ctx, "counting production's Delete buttons", chromedp.Evaluate[int64](`document.querySelectorAll('td[data-stage="production"] button.delete').length`)); n != 0 {
		t.Fatalf("%d Delete buttons in the immutable production stage", n)
	}
	// The Delete buttons fit at phone width too.
	checkWidths(t, ctx, "repository-delete")
	pageRun(t, ctx, "clicking Delete",
		chromedp.Click(chromedp.CSS(`tr[data-tag="a"] td[data-stage="staging"] button.delete`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm")))
	wantText(t, ctx, "Delete the tag staging/web2:a?", "Only this tag goes")
	pageRun(t, ctx, "confirming",
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-tag="b"]`)))
	wantText(t, ctx, "Deleted the tag staging/web2:a.")
	if gone := pageGet(t, ctx, "looking for the deleted row", chromedp.Evaluate[bool](`document.querySelector('tr[data-tag="a"]') === null`)); !gone {
		t.Fatal("the deleted tag still has a row")
	}
	if _, err := remote.Head(parseRef(t, reg.Ref("staging/web2:a")), as(reg.Admin())); err == nil {
		t.Fatal("staging/web2:a still resolves through /v2/")
	}
	if _, err := remote.Image(parseRef(t, reg.Ref("staging/web2:b")), as(reg.Admin())); err != nil {
		t.Fatalf("staging/web2:b after deleting a: %v", err)
	}
}
