package integration

import (
	"regexp"
	"strings"
	"testing"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestDocker builds a FROM-scratch image with three layers (one of 50 MiB
// of random data) with the classic builder, pushes it with docker, removes
// it locally, pulls it back, and checks the image ID and repo digest
// survived; a second push must find every layer already there. Then
// containerd's ctr (the containerd dockerd runs) pulls the same tag with
// --plain-http and must see the same manifest digest.
//
// It runs on a folder (fs) and on a MinIO bucket with redirected blob GETs
// (s3-redirect: docker and containerd follow the 307 to MinIO). The 50 MiB
// layer makes this the slowest client test, so it does not run on s3
// without redirects; conformance and the crash tests cover that read path.
// It also runs on versitygw (redirected too), the second S3 implementation.
func TestDocker(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3RedirectBackend, versitygwBackend}, testDocker)
}

func testDocker(t *testing.T, b backend) {
	reg := b.start(t)
	tools := harness.NewTools(t)
	tools.RequireDocker()
	tools.DockerLogin(reg.Host, reg.User())

	ref := reg.Ref("it/app:1")
	repo := reg.Ref("it/app")
	imageID := buildScratchImage(t, tools, ref,
		imageFile{"/data/small.bin", 256 << 10}, imageFile{"/data/big.bin", 50<<20 + 12345}, imageFile{"/data/tail.bin", 4 << 10})
	layers := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{len .RootFS.Layers}}", ref))
	if layers != "3" {
		t.Fatalf("built image has %s layers, want 3", layers)
	}
	t.Logf("built %s: image ID %s, %s layers", ref, imageID, layers)

	// docker push prints "<tag>: digest: sha256:... size: N".
	pushOut := tools.Run("docker", "push", ref)
	pushDigest := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`), pushOut, "pushed digest")
	repoDigests := tools.Run("docker", "image", "inspect", "-f", "{{json .RepoDigests}}", ref)
	if !strings.Contains(repoDigests, repo+"@"+pushDigest) {
		t.Fatalf("after push, RepoDigests %s lacks %s@%s", strings.TrimSpace(repoDigests), repo, pushDigest)
	}

	tools.Run("docker", "rmi", ref)
	if out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "image", "inspect", imageID}}); err == nil {
		t.Fatalf("image %s still present after docker rmi:\n%s", imageID, out)
	}

	pullOut := tools.Run("docker", "pull", ref)
	pullDigest := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), pullOut, "pulled digest")
	if pullDigest != pushDigest {
		t.Errorf("docker pull digest %s, pushed %s", pullDigest, pushDigest)
	}
	if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", ref)); got != imageID {
		t.Errorf("pulled image ID %s, built %s", got, imageID)
	}
	repoDigests = tools.Run("docker", "image", "inspect", "-f", "{{json .RepoDigests}}", ref)
	if !strings.Contains(repoDigests, repo+"@"+pushDigest) {
		t.Errorf("after pull, RepoDigests %s lacks %s@%s", strings.TrimSpace(repoDigests), repo, pushDigest)
	}
	checkBlobReads(t, reg, b, "docker/")

	// Pushing again uploads nothing: every layer is found by HEAD.
	repushOut := tools.Run("docker", "push", ref)
	if n := strings.Count(repushOut, "Layer already exists"); n != 3 {
		t.Errorf("re-push: %d \"Layer already exists\" lines, want 3:\n%s", n, repushOut)
	}
	if d := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`), repushOut, "re-pushed digest"); d != pushDigest {
		t.Errorf("re-push digest %s, first push %s", d, pushDigest)
	}

	t.Run("ctr", func(t *testing.T) {
		sock := tools.ContainerdSocket()
		ctr := func(args ...string) string {
			return tools.Run(append([]string{"ctr", "--address", sock, "--namespace", "slipwaytest"}, args...)...)
		}
		t.Cleanup(func() {
			_, _ = tools.Exec(harness.Cmd{Args: []string{"ctr", "--address", sock, "--namespace", "slipwaytest", "images", "rm", "--sync", ref}})
		})
		ctr("images", "pull", "--plain-http", "--user", reg.User().String(), ref)
		// REF TYPE DIGEST SIZE PLATFORMS LABELS
		ls := ctr("images", "ls")
		var got string
		for _, line := range strings.Split(ls, "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == ref {
				got = f[2]
			}
		}
		if got != pushDigest {
			t.Errorf("ctr images ls: %s has digest %q, docker pushed %s\n%s", ref, got, pushDigest, ls)
		}
		// Every blob of the image (config + 3 layers) is in containerd's
		// content store: REF TYPE DIGEST "complete (4/4)" SIZE UNPACKED.
		check := ctr("images", "check")
		if !regexp.MustCompile(regexp.QuoteMeta(ref) + `\s+\S+\s+\S+\s+complete \(4/4\)`).MatchString(check) {
			t.Errorf("ctr images check does not report %s complete (4/4):\n%s", ref, check)
		}
		checkBlobReads(t, reg, b, "containerd/")
	})
}
