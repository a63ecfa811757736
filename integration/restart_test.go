package integration

import (
	"bytes"
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestBaseEndpoint: GET /v2/ without a token answers 401 with the Bearer
// challenge (realm: the token endpoint on the public URL; service) and the
// API version header docker checks for; with a token, 200 with that header.
func TestBaseEndpoint(t *testing.T) {
	reg := harness.Start(t)
	resp, err := http.Get(reg.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Errorf("GET /v2/ without a token: Docker-Distribution-API-Version %q, want registry/2.0", got)
	}
	if !harness.IsStock() { // the stock registry runs without auth
		ch, ok := harness.ParseBearerChallenge(resp.Header.Get("WWW-Authenticate"))
		if resp.StatusCode != http.StatusUnauthorized || !ok || ch.Realm != reg.URL()+"/auth/token" || ch.Service != "slipway" || ch.Scope != "" {
			t.Errorf("GET /v2/ without a token: %s, WWW-Authenticate %q; want 401 with a Bearer challenge, realm %s/auth/token, service slipway, no scope",
				resp.Status, resp.Header.Get("WWW-Authenticate"), reg.URL())
		}
	}

	resp, err = harness.NewClient(reg.User()).Get(reg.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ with a token: %s, want 200", resp.Status)
	}
	if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Errorf("GET /v2/ with a token: Docker-Distribution-API-Version %q, want registry/2.0", got)
	}
}

// TestRestart: content pushed before a SIGKILL, and before a clean
// SIGTERM stop, is all there after a restart on the same storage root (or
// bucket).
func TestRestart(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3Backend}, testRestart)
}

func testRestart(t *testing.T, b backend) {
	reg := b.start(t)
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	check := func(t *testing.T, ref string, img v1.Image) {
		t.Helper()
		desc, err := remote.Get(parseRef(t, ref), as(reg.User()))
		if err != nil {
			t.Fatalf("remote.Get %s: %v", ref, err)
		}
		if !bytes.Equal(desc.Manifest, mustRaw(t, img)) {
			t.Errorf("%s: manifest bytes differ after restart", ref)
		}
		rimg, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(rimg); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}

	before := ociImage(t, 2, 256<<10, plat)
	if err := remote.Write(parseRef(t, reg.Ref("it/restart:kill")), before, as(reg.User())); err != nil {
		t.Fatal(err)
	}
	reg.Kill()
	if reg.Running() {
		t.Fatal("server still running after Kill")
	}
	reg.Restart()
	check(t, reg.Ref("it/restart:kill"), before)

	after := ociImage(t, 2, 256<<10, plat)
	if err := remote.Write(parseRef(t, reg.Ref("it/restart:term")), after, as(reg.User())); err != nil {
		t.Fatal(err)
	}
	if err := reg.Stop(); err != nil {
		t.Errorf("SIGTERM stop: %v", err)
	}
	reg.Restart()
	check(t, reg.Ref("it/restart:kill"), before)
	check(t, reg.Ref("it/restart:term"), after)
}
