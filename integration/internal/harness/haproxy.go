package harness

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HAProxy check timing of the cluster's load balancer: a server is marked
// down after Fall failed checks Inter apart, up after Rise good ones.
const (
	HAProxyInter = 500 * time.Millisecond
	HAProxyFall  = 2
	HAProxyRise  = 2
)

// HAProxy is Debian's haproxy (setup.sh installs it) in front of replicas,
// configured as an operator would: round robin per request, no stickiness,
// `option httpchk GET /readyz`, connection failures retried and
// redispatched to another server. It listens on 127.0.0.1 only.
type HAProxy struct {
	Host    string // 127.0.0.1:PORT of the frontend
	LogPath string
	sock    string // stats socket (level admin)
	cmd     *exec.Cmd
	done    chan struct{}
}

// HAProxyBinary is haproxy's path: $SLIPWAY_IT_HAPROXY, else haproxy on
// PATH, else /usr/sbin/haproxy (Debian's, not on a user's PATH).
func HAProxyBinary() (string, error) {
	if p := os.Getenv("SLIPWAY_IT_HAPROXY"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/haproxy"
	if _, err := os.Stat(debian); err != nil {
		return "", fmt.Errorf("haproxy not on PATH nor at %s; %s", debian, setupHint)
	}
	return debian, nil
}

// HAProxySource is the address HAProxy connects to the replicas from:
// another loopback address than the clients' 127.0.0.1, so that a replica
// trusting only it (http.trusted_proxies) tells the proxy from the client.
const HAProxySource = "127.0.0.2"

// HAProxyConfig is the configuration for a frontend on host balancing over
// servers (named r1, r2, ... in order), with its stats socket at sock. The
// cluster tests and bench/run-haproxy.sh (through ./haproxycfg) run this
// one configuration.
func HAProxyConfig(host, sock string, servers []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 5m
    timeout server 5m
    timeout http-request 30s
    timeout http-keep-alive 10s
    timeout check 1s
    # A request whose connection to a server fails is sent again, to
    # another server: nothing was sent, so any method may be retried.
    retries 3
    option redispatch 1

frontend registry
    bind %s
    # The client's address and scheme, for the replicas' access logs,
    # login throttling and token realm (they trust HAProxySource only).
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    default_backend slipway

backend slipway
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter %dms fall %d rise %d source %s
`, sock, host, HAProxyInter.Milliseconds(), HAProxyFall, HAProxyRise, HAProxySource)
	for i, s := range servers {
		fmt.Fprintf(&b, "    server r%d %s\n", i+1, s)
	}
	return b.String()
}

// StartHAProxy runs haproxy on host (127.0.0.1:PORT) in front of servers
// (host:port each) until the test ends, and waits until every server is
// UP.
func StartHAProxy(t testing.TB, host string, servers []string) *HAProxy {
	t.Helper()
	bin, err := HAProxyBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := &HAProxy{Host: host, sock: filepath.Join(dir, "stats.sock")}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(HAProxyConfig(host, h.sock, servers)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(logDir, Sanitize(t.Name())+"-haproxy-*.log")
	if err != nil {
		t.Fatal(err)
	}
	h.LogPath = f.Name()
	// -db: in the foreground, not as a daemon.
	h.cmd = exec.Command(bin, "-db", "-f", cfg)
	h.cmd.Stdout, h.cmd.Stderr = f, f
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting haproxy: %v", err)
	}
	h.done = make(chan struct{})
	go func() { _ = h.cmd.Wait(); f.Close(); close(h.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.done
		if t.Failed() {
			t.Logf("haproxy log (%s), last lines:\n%s", h.LogPath, tail(h.LogPath, 20))
		}
	})
	names := make([]string, len(servers))
	for i := range servers {
		names[i] = fmt.Sprintf("r%d", i+1)
	}
	for _, n := range names {
		if _, err := h.WaitState(n, "UP", 30*time.Second); err != nil {
			t.Fatalf("%v\nhaproxy log:\n%s", err, tail(h.LogPath, 20))
		}
	}
	return h
}

// URL is the frontend's base URL.
func (h *HAProxy) URL() string { return "http://" + h.Host }

// command sends one command to the stats socket and returns the answer.
func (h *HAProxy) command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", h.sock, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	return string(b), err
}

// States is each server's status by name ("r1": "UP", "DOWN", "MAINT",
// "UP 1/2" while rising...), from the stats socket's `show stat`.
func (h *HAProxy) States() (map[string]string, error) {
	out, err := h.command("show stat")
	if err != nil {
		return nil, err
	}
	rd := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("haproxy show stat: %v\n%s", err, out)
	}
	if len(rows) == 0 {
		return nil, errors.New("haproxy show stat: empty answer")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	states := map[string]string{}
	for _, r := range rows[1:] {
		if len(r) > col["status"] && r[col["pxname"]] == "slipway" && r[col["svname"]] != "BACKEND" {
			states[r[col["svname"]]] = r[col["status"]]
		}
	}
	return states, nil
}

// WaitState polls (every 50ms, up to timeout) until server name's status
// is want, and returns how long that took.
func (h *HAProxy) WaitState(name, want string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		st, err := h.States()
		if err != nil {
			last = err.Error()
		} else if last = st[name]; last == want {
			return time.Since(start), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("haproxy server %s: status %q after %s, want %s", name, last, timeout, want)
}

// Get is a plain GET through the frontend (no credentials), for probes.
func (h *HAProxy) Get(path string) (int, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(h.URL() + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
