package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// setupHint ends every "tool missing" message.
const setupHint = "run integration/scripts/setup.sh (as root) first"

// DefaultTimeout bounds one external command.
const DefaultTimeout = 5 * time.Minute

// lookTool finds name on PATH, then in Go's bin folder (where setup.sh puts
// crane, oras, regctl and the stock registry).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range goBinDirs() {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in %s", name, strings.Join(goBinDirs(), ", "))
}

func goBinDirs() []string {
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	return dirs
}

// ConformanceBinary is the OCI conformance suite binary setup.sh builds, or
// $SLIPWAY_IT_CONFORMANCE.
func ConformanceBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("SLIPWAY_IT_CONFORMANCE")
	if p == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatal(err)
			}
			cache = filepath.Join(home, ".cache")
		}
		p = filepath.Join(cache, "slipway-it", "conformance", "conformance")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("OCI conformance binary missing (%v): %s", err, setupHint)
	}
	return p
}

// Tools runs external clients for one test, with a private DOCKER_CONFIG
// (so logins and credential helpers never leak between tests) and a private
// registries auth file for skopeo.
type Tools struct {
	t   testing.TB
	Env []string // environment of every command
	Dir string   // working folder of every command (a temp dir)
	// DockerConfig is the folder DOCKER_CONFIG names (config.json is
	// where docker, crane and oras keep logins).
	DockerConfig string

	secrets []string // replaced by *** in logged command lines
}

// NewTools prepares the per-test environment.
func NewTools(t testing.TB) *Tools {
	t.Helper()
	dir := t.TempDir()
	dockerCfg := filepath.Join(dir, ".docker")
	if err := os.MkdirAll(dockerCfg, 0o700); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := FilterEnv(os.Environ(), "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=", "DOCKER_HOST=", "DOCKER_CONTEXT=")
	env = append(env,
		"DOCKER_CONFIG="+dockerCfg,
		"REGISTRY_AUTH_FILE="+filepath.Join(dir, "containers-auth.json"),
		"DOCKER_CLI_HINTS=false",
	)
	x := &Tools{t: t, Env: env, Dir: work, DockerConfig: dockerCfg}
	if makeAccounts() == nil {
		x.Redact(admin.Password, user.Password)
	}
	return x
}

// Redact hides secrets in the command lines Exec logs.
func (x *Tools) Redact(secrets ...string) {
	for _, s := range secrets {
		if s != "" {
			x.secrets = append(x.secrets, s)
		}
	}
}

func (x *Tools) redact(s string) string {
	for _, sec := range x.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}

// DockerLogin runs `docker login host -u USER --password-stdin` (the
// password on stdin) and fails the test if it fails; it returns the
// output.
func (x *Tools) DockerLogin(host string, c Credentials) string {
	x.t.Helper()
	x.Redact(c.Password)
	return x.RunCmd(Cmd{Args: []string{"docker", "login", host, "-u", c.Username, "--password-stdin"}, Stdin: c.Password})
}

// CraneLogin stores c for host in DOCKER_CONFIG with `crane auth login`.
func (x *Tools) CraneLogin(host string, c Credentials) {
	x.t.Helper()
	x.Redact(c.Password)
	x.RunCmd(Cmd{Args: []string{"crane", "auth", "login", host, "-u", c.Username, "--password-stdin"}, Stdin: c.Password})
}

// OrasLogin stores c for host with `oras login --plain-http` (oras checks
// the credentials against the registry).
func (x *Tools) OrasLogin(host string, c Credentials) {
	x.t.Helper()
	x.Redact(c.Password)
	x.RunCmd(Cmd{Args: []string{"oras", "login", "--plain-http", host, "-u", c.Username, "--password-stdin"}, Stdin: c.Password})
}

// Path resolves a client binary or fails the test with a clear message.
func (x *Tools) Path(name string) string {
	x.t.Helper()
	p, err := lookTool(name)
	if err != nil {
		x.t.Fatalf("required tool: %v; %s", err, setupHint)
	}
	return p
}

// Cmd describes one command run by Tools.
type Cmd struct {
	Args    []string      // program and arguments
	Env     []string      // added to Tools.Env
	Dir     string        // default Tools.Dir
	Timeout time.Duration // default DefaultTimeout
	Stdin   string        // standard input ("" for none)
}

// Exec runs c and returns its combined output and error; it does not fail
// the test.
func (x *Tools) Exec(c Cmd) (string, error) {
	x.t.Helper()
	bin := x.Path(c.Args[0])
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, c.Args[1:]...)
	cmd.Env = append(append([]string{}, x.Env...), c.Env...)
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = x.Dir
	}
	if c.Stdin != "" {
		cmd.Stdin = strings.NewReader(c.Stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	x.t.Logf("$ %s  (%s%s)", x.redact(strings.Join(c.Args, " ")), time.Since(start).Round(time.Millisecond), errSuffix(err))
	return out.String(), err
}

// Run runs a command and fails the test if it fails, showing its output.
func (x *Tools) Run(args ...string) string {
	x.t.Helper()
	return x.RunCmd(Cmd{Args: args})
}

// RunCmd is Run with options.
func (x *Tools) RunCmd(c Cmd) string {
	x.t.Helper()
	out, err := x.Exec(c)
	if err != nil {
		x.t.Fatalf("%s: %v\noutput:\n%s", x.redact(strings.Join(c.Args, " ")), err, LastLines(out, 60))
	}
	return out
}

// RequireDocker fails the test unless a docker daemon answers.
func (x *Tools) RequireDocker() {
	x.t.Helper()
	out, err := x.Exec(Cmd{Args: []string{"docker", "info", "--format", "{{.ServerVersion}} {{.Driver}}"}, Timeout: 30 * time.Second})
	if err != nil {
		x.t.Fatalf("docker daemon not reachable (%v): %s (it starts dockerd)\n%s", err, setupHint, LastLines(out, 20))
	}
	x.t.Logf("docker daemon: %s", strings.TrimSpace(out))
}

// ContainerdSocket is the socket of the containerd that dockerd runs.
func (x *Tools) ContainerdSocket() string {
	x.t.Helper()
	if s := os.Getenv("SLIPWAY_IT_CONTAINERD_SOCKET"); s != "" {
		return s
	}
	for _, s := range []string{
		"/run/docker/containerd/containerd.sock",
		"/var/run/docker/containerd/containerd.sock",
		"/run/containerd/containerd.sock",
	} {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return s
		}
	}
	x.t.Fatalf("no containerd socket under /run/docker/containerd or /var/run/docker/containerd: %s (dockerd starts containerd)", setupHint)
	return ""
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Sprintf(", exit %d", ee.ExitCode())
	}
	return ", " + err.Error()
}

// LastLines is the last n lines of s, with a count of those left out.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// FilterOCI drops OCI_* variables from env.
func FilterOCI(env []string) []string { return FilterEnv(env, "OCI_") }
