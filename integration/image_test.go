package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/integration/internal/harness"
)

// The image's contract, which deploy/ and the README rely on.
const (
	imageUser = "65532:65532"
	imageUID  = 65532
	// imageMaxSize catches a toolchain or build cache slipping into the
	// runtime image (the static binary is about 30 MB).
	imageMaxSize = 48 << 20
)

// imageEnv is the image's one default: the storage root, which the
// signing key follows (/data/keys/token.pem) unless auth.signing_key is
// set, so a configuration file can still name its own key (deploy/ does).
var imageEnv = []string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT=/data"}

// TestImage builds the repository's Dockerfile (its build stage on a
// toolchain image made from this machine's Go, see toolchainImage), checks
// the image's configuration, and runs it twice on the host network (no
// bridge here, so no -p; the image and its configuration are the same):
//   - as an operator would, /data an anonymous volume: healthy, docker
//     login works (the admin and the signing key were written to /data);
//   - read-only (--read-only --tmpfs /tmp, /data a folder owned by 65532):
//     healthy; the image pushes itself into this very Slipway as
//     staging/slipway:test, pulls back with the same digest, is promoted
//     to production by the image's own `slipway promote`, and
//     production/slipway:test pulls with the same digest and image ID; the
//     files it wrote in /data belong to 65532.
//
// The build cache is left in place (only the tags this test made are
// removed): the next run rebuilds from the first changed layer.
func TestImage(t *testing.T) {
	tools := harness.NewTools(t)
	tools.RequireDocker()
	goImage := toolchainImage(t, tools)
	image := "slipway-it/slipway:" + randomString(t)
	const version = "v0.0.0-imagetest"
	buildSlipwayImage(t, tools, goImage, image, version)
	imageID := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", image))
	checkImageConfig(t, tools, image)
	if out := tools.Run("docker", "run", "--rm", "--network", "none", image, "version"); !strings.HasPrefix(out, "slipway "+version+" ") {
		t.Fatalf("slipway version in the image printed %q, want the build's VERSION %s", out, version)
	}

	t.Run("anonymous-volume", func(t *testing.T) {
		c := startContainer(t, tools, image)
		if mounts := tools.Run("docker", "inspect", "-f", "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}", c.id); strings.TrimSpace(mounts) != "volume:/data" {
			t.Errorf("mounts %q, want the image's anonymous volume on /data", mounts)
		}
		tools.DockerLogin(c.host, c.admin)
	})

	t.Run("read-only", func(t *testing.T) {
		data := t.TempDir()
		if err := os.Chown(data, imageUID, imageUID); err != nil {
			t.Fatal(err)
		}
		c := startContainer(t, tools, image, "--read-only", "--tmpfs", "/tmp", "-v", data+":/data")
		tools.DockerLogin(c.host, c.admin)

		staging, production := c.host+"/staging/slipway:test", c.host+"/production/slipway:test"
		dockerTag(t, tools, image, staging)
		t.Cleanup(func() { _, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", production}}) })
		pushed := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`), tools.Run("docker", "push", staging), "pushed digest")
		checkRepoDigest(t, tools, staging, c.host+"/staging/slipway@"+pushed)
		tools.Run("docker", "image", "rm", staging)
		pulled := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), tools.Run("docker", "pull", staging), "pulled digest")
		if pulled != pushed {
			t.Fatalf("pulled %s, pushed %s", pulled, pushed)
		}

		// The promotion API, called by the image's own CLI.
		out := tools.Run("docker", "exec", "-e", "SLIPWAY_URL=http://"+c.host, "-e", "SLIPWAY_USER=admin", "-e", "SLIPWAY_PASSWORD="+c.admin.Password,
			c.id, "/slipway", "promote", "staging/slipway:test", "--to", "production", "--expect-digest", pushed, "--reason", "TestImage", "--json")
		var rec struct{ Digest, Target, Outcome, Actor string }
		decodeJSON(t, out, &rec)
		if rec.Digest != pushed || rec.Target != "production/slipway:test" || rec.Actor != "admin" {
			t.Fatalf("promotion record %+v, want %s as production/slipway:test by admin", rec, pushed)
		}
		promoted := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), tools.Run("docker", "pull", production), "production digest")
		if promoted != pushed {
			t.Fatalf("production/slipway:test is %s, staging pushed %s", promoted, pushed)
		}
		checkRepoDigest(t, tools, production, c.host+"/production/slipway@"+pushed)
		if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", production)); got != imageID {
			t.Fatalf("production image ID %s, built %s", got, imageID)
		}

		// What the server wrote is in /data, as the image's user.
		for _, p := range []string{"keys/token.pem", "auth/users/admin"} {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(data, p), &st); err != nil || st.Uid != imageUID {
				t.Errorf("/data/%s: %v, uid %d; want a file of uid %d", p, err, st.Uid, imageUID)
			}
		}
	})
}

// buildSlipwayImage runs `docker build` on the repository's Dockerfile
// with the classic builder (no buildx here), on the host network (the
// module proxy), passing this machine's GOPROXY and GOFLAGS on; the tag
// is removed when the test ends.
//
// The build stage's layers stay as the next run's cache, tagged
// buildCacheTag; the previous run's, when the sources changed, are
// removed, so a CI machine keeps one build's worth (on vfs every layer is
// a full copy of the stage: about 4 GB).
func buildSlipwayImage(t *testing.T, tools *harness.Tools, goImage, image, version string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goenv := strings.Split(strings.TrimRight(tools.Run("go", "env", "GOPROXY", "GOFLAGS"), "\n"), "\n")
	if len(goenv) != 2 {
		t.Fatalf("go env GOPROXY GOFLAGS: %q", goenv)
	}
	build := func(args ...string) {
		tools.RunCmd(harness.Cmd{Args: append([]string{"docker", "build", "--network", "host",
			"--build-arg", "GO_IMAGE=" + goImage, "--build-arg", "VERSION=" + version,
			"--build-arg", "GOPROXY=" + goenv[0], "--build-arg", "GOFLAGS=" + goenv[1],
			"-f", filepath.Join(root, "Dockerfile")}, append(args, root)...),
			Env: []string{"DOCKER_BUILDKIT=0"}, Timeout: 30 * time.Minute})
	}
	const buildCacheTag = "slipway-it/slipway-build:cache"
	previous, _ := tools.Exec(harness.Cmd{Args: []string{"docker", "image", "inspect", "-f", "{{.Id}}", buildCacheTag}})
	t.Cleanup(func() { _, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", image}}) })
	start := time.Now()
	build("--target", "build", "-t", buildCacheTag)
	build("-t", image)
	t.Logf("docker build of %s: %s", image, time.Since(start).Round(time.Second))
	if previous = strings.TrimSpace(previous); strings.HasPrefix(previous, "sha256:") {
		if now := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", buildCacheTag)); now != previous {
			_, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", previous}})
		}
	}
}

// checkImageConfig asserts the image's user, port, volume, health check,
// environment and size.
func checkImageConfig(t *testing.T, tools *harness.Tools, image string) {
	t.Helper()
	var cfg struct {
		Size   int64
		Config struct {
			User         string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			Env          []string
			Entrypoint   []string
			Cmd          []string
			Healthcheck  struct{ Test []string }
		}
	}
	decodeJSON(t, tools.Run("docker", "image", "inspect", "-f", "{{json .}}", image), &cfg)
	c := cfg.Config
	t.Logf("image %s: %.1f MB, user %s, env %q", image, float64(cfg.Size)/1e6, c.User, c.Env)
	if c.User != imageUser {
		t.Errorf("Config.User %q, want %q", c.User, imageUser)
	}
	if _, ok := c.ExposedPorts["5000/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ExposedPorts %v, want 5000/tcp", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
		t.Errorf("Volumes %v, want /data", c.Volumes)
	}
	if got := strings.Join(c.Healthcheck.Test, " "); got != "CMD /slipway healthcheck" {
		t.Errorf("Healthcheck %q, want CMD /slipway healthcheck", got)
	}
	if got := strings.Join(append(c.Entrypoint, c.Cmd...), " "); got != "/slipway serve" {
		t.Errorf("entrypoint and command %q, want /slipway serve", got)
	}
	var slipwayEnv []string
	for _, kv := range c.Env {
		if strings.HasPrefix(kv, "SLIPWAY_") {
			slipwayEnv = append(slipwayEnv, kv)
		}
	}
	if strings.Join(slipwayEnv, " ") != strings.Join(imageEnv, " ") {
		t.Errorf("SLIPWAY_* variables %q, want exactly %q", slipwayEnv, imageEnv)
	}
	if cfg.Size > imageMaxSize {
		t.Errorf("image is %d bytes, more than %d", cfg.Size, imageMaxSize)
	}
}

// container is a Slipway container on the host network.
type container struct {
	id    string
	host  string // 127.0.0.1:PORT
	admin harness.Credentials
}

// startContainer runs image detached with SLIPWAY_HTTP_ADDR on a free
// loopback port, SLIPWAY_ADMIN_PASSWORD random and a 1 s health interval,
// and waits until docker reports it healthy. It is removed (with its
// anonymous volume) when the test ends, its logs shown if the test failed.
func startContainer(t *testing.T, tools *harness.Tools, image string, args ...string) container {
	t.Helper()
	c := container{host: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)), admin: harness.Credentials{Username: "admin", Password: randomString(t)}}
	tools.Redact(c.admin.Password)
	run := append([]string{"docker", "run", "-d", "--network", "host", "--health-interval", "1s",
		"-e", "SLIPWAY_HTTP_ADDR=" + c.host, "-e", "SLIPWAY_ADMIN_PASSWORD=" + c.admin.Password}, args...)
	c.id = strings.TrimSpace(tools.Run(append(run, image)...))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := tools.Exec(harness.Cmd{Args: []string{"docker", "logs", "--tail", "40", c.id}})
			t.Logf("container logs:\n%s", out)
		}
		_, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "rm", "-f", "-v", c.id}})
	})
	start := time.Now()
	for {
		var st struct {
			Running bool
			Health  struct {
				Status string
				Log    []struct {
					ExitCode int
					Output   string
				}
			}
		}
		decodeJSON(t, tools.Run("docker", "inspect", "-f", "{{json .State}}", c.id), &st)
		switch {
		case st.Health.Status == "healthy":
			if last := st.Health.Log[len(st.Health.Log)-1]; !strings.Contains(last.Output, "http://"+c.host+"/healthz") {
				t.Fatalf("health check output %q does not name http://%s/healthz", last.Output, c.host)
			}
			return c
		case !st.Running || st.Health.Status == "unhealthy" || time.Since(start) > time.Minute:
			t.Fatalf("container running=%v, health %q after %s: %+v", st.Running, st.Health.Status, time.Since(start).Round(time.Second), st.Health.Log)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkRepoDigest asserts that ref's local image lists want (repo@digest).
func checkRepoDigest(t *testing.T, tools *harness.Tools, ref, want string) {
	t.Helper()
	if got := tools.Run("docker", "image", "inspect", "-f", "{{json .RepoDigests}}", ref); !strings.Contains(got, `"`+want+`"`) {
		t.Fatalf("RepoDigests of %s: %s, want %s", ref, strings.TrimSpace(got), want)
	}
}

func randomString(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
