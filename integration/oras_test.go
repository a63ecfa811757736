package integration

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestOras pushes an artifact with oras, attaches an SBOM-typed referrer
// to it, and finds the referrer through the OCI 1.1 referrers API (forced
// with --distribution-spec v1.1-referrers-api, since oras otherwise falls
// back to the tag scheme on a 404); then pulls the referrer's file back.
func TestOras(t *testing.T) {
	eachBackend(t, allBackends, testOras)
}

func testOras(t *testing.T, b backend) {
	reg := b.start(t)
	tools := harness.NewTools(t)

	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	artifact := "artifact " + hex.EncodeToString(nonce) + "\n"
	sbom := `{"sbom":"` + hex.EncodeToString(nonce) + `","packages":[]}` + "\n"
	for name, body := range map[string]string{"artifact.txt": artifact, "sbom.json": sbom} {
		if err := os.WriteFile(filepath.Join(tools.Dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := reg.Ref("it/oras:1")
	tools.OrasLogin(reg.Host, reg.User())

	var pushed struct {
		Digest       string `json:"digest"`
		ArtifactType string `json:"artifactType"`
	}
	decodeJSON(t, tools.Run("oras", "push", "--plain-http", "--format", "json",
		"--artifact-type", "application/vnd.example.thing", ref, "artifact.txt:text/plain"), &pushed)
	if !digestRE.MatchString(pushed.Digest) {
		t.Fatalf("oras push reported digest %q", pushed.Digest)
	}

	var attached struct {
		Digest       string `json:"digest"`
		ArtifactType string `json:"artifactType"`
	}
	decodeJSON(t, tools.Run("oras", "attach", "--plain-http", "--format", "json",
		"--artifact-type", "application/vnd.example.sbom+json", ref, "sbom.json:application/json"), &attached)
	if !digestRE.MatchString(attached.Digest) {
		t.Fatalf("oras attach reported digest %q", attached.Digest)
	}

	out := tools.Run("oras", "discover", "--plain-http", "--distribution-spec", "v1.1-referrers-api",
		"--format", "json", ref)
	var disc struct {
		Digest    string `json:"digest"`
		Referrers []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"referrers"`
	}
	decodeJSON(t, out, &disc)
	if disc.Digest != pushed.Digest {
		t.Errorf("discover subject digest %s, pushed %s", disc.Digest, pushed.Digest)
	}
	found := false
	for _, r := range disc.Referrers {
		if r.Digest == attached.Digest {
			found = true
			if r.ArtifactType != "application/vnd.example.sbom+json" {
				t.Errorf("referrer %s has artifactType %q", r.Digest, r.ArtifactType)
			}
		}
	}
	if !found {
		t.Errorf("oras discover (referrers API) does not list the attached %s:\n%s", attached.Digest, out)
	}

	// Filtering by artifact type still finds it.
	filtered := tools.Run("oras", "discover", "--plain-http", "--distribution-spec", "v1.1-referrers-api",
		"--artifact-type", "application/vnd.example.sbom+json", "--format", "json", ref)
	if !strings.Contains(filtered, attached.Digest) {
		t.Errorf("oras discover --artifact-type does not list %s:\n%s", attached.Digest, filtered)
	}

	outDir := filepath.Join(tools.Dir, "pulled")
	tools.Run("oras", "pull", "--plain-http", "-o", outDir, reg.Ref("it/oras@"+attached.Digest))
	got, err := os.ReadFile(filepath.Join(outDir, "sbom.json"))
	if err != nil {
		t.Fatalf("oras pull of the referrer: %v", err)
	}
	if string(got) != sbom {
		t.Errorf("pulled sbom.json = %q, want %q", got, sbom)
	}
	checkBlobReads(t, reg, b, "oras/")
}
