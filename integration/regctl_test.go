package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestRegctl drives the registry with regctl (regclient): login; an image
// copied from an OCI layout in 1 MiB chunks (blob-max and blob-chunk set,
// so every layer is a POST, several PATCHes with Content-Range, each sent
// to the Location the last answer gave, and a PUT); the same image copied
// within the registry; tags listed; an artifact put as a referrer and
// found through the referrers API; the image copied back into a layout,
// intact; and a tag deleted.
func TestRegctl(t *testing.T) {
	eachBackend(t, allBackends, testRegctl)
}

func testRegctl(t *testing.T, b backend) {
	reg := b.start(t)
	tools := harness.NewTools(t)
	tools.Env = append(tools.Env, "REGCTL_CONFIG="+filepath.Join(tools.Dir, "regctl.json"))
	regctl := func(args ...string) string {
		t.Helper()
		return tools.Run(append([]string{"regctl"}, args...)...)
	}
	regctl("registry", "set", "--tls", "disabled", "--blob-max", "1048576", "--blob-chunk", "1048576", reg.Host)
	c := reg.User()
	tools.Redact(c.Password)
	tools.RunCmd(harness.Cmd{Args: []string{"regctl", "registry", "login", reg.Host, "-u", c.Username, "--pass-stdin"}, Stdin: c.Password})

	// Layers of 3 MiB and a bit: four chunks each, the last a short one.
	img := ociImage(t, 2, 3<<20+4321, v1.Platform{OS: "linux", Architecture: "amd64"})
	want := mustDigest(t, img)
	srcDir := writeLayout(t, filepath.Join(tools.Dir, "src-layout"), img, "v1")

	dest := reg.Ref("it/regctl:1")
	regctl("image", "copy", "ocidir://"+srcDir+":v1", dest)
	desc, err := remote.Get(parseRef(t, dest), as(c))
	if err != nil {
		t.Fatalf("remote.Get %s: %v", dest, err)
	}
	if desc.Digest != want || !bytes.Equal(desc.Manifest, mustRaw(t, img)) {
		t.Fatalf("registry has %s at %s, the layout had %s", desc.Digest, dest, want)
	}
	if got := strings.TrimSpace(regctl("image", "digest", dest)); got != want.String() {
		t.Errorf("regctl image digest %s = %q, want %s", dest, got, want)
	}
	if n := uploadPATCHes(reg, "regclient/"); !harness.IsStock() && n < 8 {
		t.Errorf("regctl sent %d accepted PATCHes, want 8 or more (two layers of four chunks): was the upload chunked?", n)
	}

	// Within the registry: the blobs are there already (mount or HEAD).
	copied := reg.Ref("it/regctl-copy:1")
	regctl("image", "copy", dest, copied)
	if got := strings.TrimSpace(regctl("image", "digest", copied)); got != want.String() {
		t.Errorf("copy within the registry: %s is %q, want %s", copied, got, want)
	}
	regctl("image", "copy", dest, reg.Ref("it/regctl:2"))
	if tags := strings.Fields(regctl("tag", "ls", reg.Ref("it/regctl"))); strings.Join(tags, ",") != "1,2" {
		t.Errorf("regctl tag ls it/regctl = %v, want [1 2]", tags)
	}

	// A referrer, put as an artifact and listed through the referrers API.
	sbom := filepath.Join(tools.Dir, "sbom.json")
	if err := os.WriteFile(sbom, []byte(`{"sbom":"`+want.Hex[:16]+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	regctl("artifact", "put", "--artifact-type", "application/vnd.example.sbom+json", "--subject", dest,
		"--file", sbom, "--file-media-type", "application/json")
	listed := regctl("artifact", "list", dest, "--format", "{{range .Descriptors}}{{.ArtifactType}} {{.Digest}}{{println}}{{end}}")
	if !strings.Contains(listed, "application/vnd.example.sbom+json sha256:") {
		t.Errorf("regctl artifact list %s does not list the SBOM:\n%s", dest, listed)
	}
	sbomRef := strings.Fields(strings.TrimSpace(listed))
	if len(sbomRef) != 2 {
		t.Fatalf("regctl artifact list %s: want exactly the SBOM (type and digest), got:\n%s", dest, listed)
	}
	if got := regctl("artifact", "get", reg.Ref("it/regctl@"+sbomRef[1])); !strings.Contains(got, want.Hex[:16]) {
		t.Errorf("regctl artifact get of the referrer: %q", got)
	}

	// Back into a layout: the same digest, every blob intact.
	dstDir := filepath.Join(tools.Dir, "dst-layout")
	regctl("image", "copy", dest, "ocidir://"+dstDir+":v1")
	ii, err := layout.ImageIndexFromPath(dstDir)
	if err != nil {
		t.Fatalf("reading the copied layout: %v", err)
	}
	back, err := ii.Image(want)
	if err != nil {
		t.Fatalf("the copied layout has no %s: %v", want, err)
	}
	if err := validate.Image(back); err != nil {
		t.Errorf("image copied back is not intact: %v", err)
	}

	regctl("tag", "delete", copied)
	if _, err := remote.Get(parseRef(t, copied), as(c)); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("after regctl tag delete, GET %s: %v, want MANIFEST_UNKNOWN", copied, err)
	}
	checkBlobReads(t, reg, b, "regclient/")
}

// uploadPATCHes counts, in Slipway's access log, the upload PATCHes from
// clients whose User-Agent contains ua that were answered 202.
func uploadPATCHes(reg *harness.Registry, ua string) int {
	n := 0
	for _, e := range accessLog(reg, ua) {
		if e.Method == "PATCH" && e.Route == "blob_upload" && e.Status == 202 {
			n++
		}
	}
	return n
}
