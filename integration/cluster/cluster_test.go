package cluster

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
)

var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// TestCluster runs the clients operators use against HAProxy in front of
// three replicas on a distributed MinIO: each subtest proves its requests
// were spread over the replicas (their access logs, or the X-Request-Id
// of each answer found in exactly one replica's log).
func TestCluster(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterOptions{})

	t.Run("docker", func(t *testing.T) {
		tools := harness.NewTools(t)
		tools.RequireDocker()
		tools.DockerLogin(c.Host, c.User())
		ref := c.Ref("it/app:1")
		imageID := tools.BuildScratchImage(ref,
			harness.ImageFile{Path: "/small.bin", Size: 256 << 10},
			harness.ImageFile{Path: "/big.bin", Size: 24<<20 + 12345},
			harness.ImageFile{Path: "/tail.bin", Size: 4 << 10})
		pushed := firstDigest(t, tools.Run("docker", "push", ref), "digest: ")
		tools.Run("docker", "rmi", ref)
		pulled := firstDigest(t, tools.Run("docker", "pull", ref), "Digest: ")
		if pulled != pushed {
			t.Errorf("docker pull through haproxy: digest %s, pushed %s", pulled, pushed)
		}
		if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", ref)); got != imageID {
			t.Errorf("pulled image ID %s, built %s", got, imageID)
		}
		// Round robin without stickiness: one push's requests land on
		// every replica.
		for i, r := range c.Replicas {
			if n := strings.Count(r.Logs(), `"path":"/v2/it/app/`); n == 0 {
				t.Errorf("replica %d served none of the push's and pull's requests", i+1)
			} else {
				t.Logf("replica %d served %d of the push's and pull's /v2/it/app/ requests", i+1, n)
			}
		}
	})

	t.Run("crane-skopeo", func(t *testing.T) {
		tools := harness.NewTools(t)
		tools.CraneLogin(c.Host, c.User())
		img, err := random.Image(3<<20, 3)
		if err != nil {
			t.Fatal(err)
		}
		src := c.Ref("it/copy-src:1")
		if err := remote.Write(ref(t, src), img, remote.WithAuth(basic(c.User()))); err != nil {
			t.Fatalf("push through haproxy: %v", err)
		}
		want, _ := img.Digest()
		tools.Run("crane", "copy", "--insecure", src, c.Ref("it/copy-crane:1"))
		tools.Run("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
			"--src-creds", c.User().String(), "--dest-creds", c.User().String(),
			"docker://"+src, "docker://"+c.Ref("it/copy-skopeo:1"))
		for _, dst := range []string{"it/copy-crane:1", "it/copy-skopeo:1"} {
			if got := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", c.Ref(dst))); got != want.String() {
				t.Errorf("%s: digest %s, copied %s", dst, got, want)
			}
			tools.Run("crane", "validate", "--insecure", "--remote", c.Ref(dst))
		}
	})

	t.Run("promotions", func(t *testing.T) {
		ids := &harness.RequestIDs{}
		pc := &promote.Client{BaseURL: c.URL(), User: c.Admin().Username, Password: c.Admin().Password,
			HTTP: &http.Client{Transport: ids, Timeout: time.Minute}}
		const n = 6
		want := map[string]string{}
		for i := range n {
			img, err := random.Image(64<<10, 1)
			if err != nil {
				t.Fatal(err)
			}
			tag := fmt.Sprintf("1.%d", i)
			if err := remote.Write(ref(t, c.Ref("staging/app:"+tag)), img, remote.WithAuth(basic(c.Admin()))); err != nil {
				t.Fatalf("push staging/app:%s: %v", tag, err)
			}
			d, _ := img.Digest()
			want[tag] = d.String()
		}
		for i := range n {
			tag := fmt.Sprintf("1.%d", i)
			rec, created, err := pc.Promote(context.Background(), promote.Request{Source: "staging/app:" + tag, To: "production", Reason: "cluster test"})
			if err != nil || !created || rec.Digest.String() != want[tag] {
				t.Fatalf("promote staging/app:%s: created %t, digest %s (want %s), %v", tag, created, rec.Digest, want[tag], err)
			}
		}
		served := servedBy(t, c, ids.Seen(), func(r harness.RequestRecord) bool {
			return r.Method == http.MethodPost && r.Path == "/api/v1/promotions"
		})
		if len(served) != 3 {
			t.Errorf("the %d promotions were served by replicas %v, want all three", n, served)
		}
		tools := harness.NewTools(t)
		tools.CraneLogin(c.Host, c.User())
		for tag, d := range want {
			if got := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", c.Ref("production/app:"+tag))); got != d {
				t.Errorf("production/app:%s is %s, promoted %s", tag, got, d)
			}
		}
		page, err := pc.History(context.Background(), promote.Query{Repository: "app", Stage: "production"})
		if err != nil || len(page.Records) != n {
			t.Errorf("history of production/app: %d records, %v; want %d", len(page.Records), err, n)
		}
	})

	t.Run("admin-sign-in", func(t *testing.T) { testAdminSignIn(t, c) })

	// The replicas trust HAProxy's address only (http.trusted_proxies):
	// their logs name the client, not the proxy, and an address the
	// client forges in X-Forwarded-For is not believed.
	t.Run("forwarded-client", func(t *testing.T) {
		for range 3 { // one request per replica, round robin
			req, _ := http.NewRequest(http.MethodGet, c.URL()+"/v2/", nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			line := c.AccessLog(resp.Header.Get("X-Request-Id"))
			if !strings.Contains(line, `"remote":"127.0.0.1"`) || !strings.Contains(line, `"peer":"`+harness.HAProxySource+`:`) {
				t.Errorf("access log of a request through HAProxy, want remote 127.0.0.1 and peer %s: %s", harness.HAProxySource, line)
			}
		}
	})

	t.Run("conformance", func(t *testing.T) {
		harness.RunConformance(t, harness.ConformanceBinary(t), c.Host, c.User(), "cluster", nil)
	})
}

// testAdminSignIn signs in to the admin pages through HAProxy (a cookie
// jar, the login form's CSRF token) and browses: the pages after the
// sign-in land on the other replicas, which accept the session cookie one
// replica made (they share http.secret).
func testAdminSignIn(t *testing.T, c *harness.Cluster) {
	ids := &harness.RequestIDs{}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Transport: ids, Jar: jar, Timeout: 30 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(c.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	st, body := get("/admin/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if st != http.StatusOK || m == nil {
		t.Fatalf("GET /admin/login: %d, csrf field found: %t", st, m != nil)
	}
	form := url.Values{"username": {c.Admin().Username}, "password": {c.Admin().Password}, "csrf": {html.UnescapeString(m[1])}, "next": {"/admin/"}}
	resp, err := hc.PostForm(c.URL()+"/admin/login", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The redirect was followed: the last answer is the page after it.
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "Sign out") {
		t.Fatalf("sign-in through haproxy: %d, signed in: %t", resp.StatusCode, strings.Contains(string(b), "Sign out"))
	}
	login := servedBy(t, c, ids.Seen(), func(r harness.RequestRecord) bool {
		return r.Method == http.MethodPost && r.Path == "/admin/login" && r.Status == http.StatusSeeOther
	})
	if len(login) != 1 {
		t.Fatalf("the sign-in POST was served by %v", login)
	}
	before := len(ids.Seen())
	for _, p := range []string{"/admin/", "/admin/repositories", "/admin/history", "/admin/robots", "/admin/", "/admin/repositories"} {
		if st, body := get(p); st != http.StatusOK || !strings.Contains(body, "Sign out") {
			t.Errorf("GET %s after sign-in: %d, signed in: %t", p, st, strings.Contains(body, "Sign out"))
		}
	}
	pages := servedBy(t, c, ids.Seen()[before:], func(harness.RequestRecord) bool { return true })
	others := 0
	for i := range pages {
		if !login[i] {
			others++
		}
	}
	if others != 2 {
		t.Errorf("signed in on replica %v; the next pages were served by %v, want both other replicas among them", keys(login), keys(pages))
	}
}

// servedBy is the set of replicas (indexes) that served the recorded
// requests keep selects.
func servedBy(t *testing.T, c *harness.Cluster, seen []harness.RequestRecord, keep func(harness.RequestRecord) bool) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for _, r := range seen {
		if !keep(r) {
			continue
		}
		i := c.ServedBy(r.ID)
		if i < 0 {
			t.Fatalf("%s %s (%d, request id %q) is in no replica's access log", r.Method, r.Path, r.Status, r.ID)
		}
		out[i] = true
	}
	return out
}

func keys(m map[int]bool) []int {
	var out []int
	for i := range m {
		out = append(out, i+1)
	}
	return out
}

func basic(c harness.Credentials) authn.Authenticator {
	return &authn.Basic{Username: c.Username, Password: c.Password}
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// firstDigest is the digest after the first occurrence of prefix in out.
func firstDigest(t *testing.T, out, prefix string) string {
	t.Helper()
	i := strings.Index(out, prefix)
	if i < 0 || digestRE.FindString(out[i:]) == "" {
		t.Fatalf("no %q digest in output:\n%s", prefix, out)
	}
	return digestRE.FindString(out[i:])
}
