package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/internal/testpki"
)

// tlsHost is the registry's name in the TLS test: not a loopback-looking
// name, resolved to 127.0.0.1 by a line the test adds to /etc/hosts.
const tlsHost = "slipway-tls.test"

// addHostsEntry maps name to 127.0.0.1 in /etc/hosts until the test ends,
// then removes exactly the line it added (the file is rewritten in place:
// in a container it is often a bind mount, which a rename cannot replace).
func addHostsEntry(t *testing.T, name string) {
	t.Helper()
	const path = "/etc/hosts"
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := "127.0.0.1 " + name + " # slipway integration test " + t.Name() + "\n"
	sep := ""
	if len(orig) > 0 && !bytes.HasSuffix(orig, []byte("\n")) {
		sep = "\n"
	}
	if err := os.WriteFile(path, append(append(bytes.Clone(orig), sep...), line...), 0o644); err != nil {
		t.Fatalf("adding %s to %s (the integration tests run as root): %v", name, path, err)
	}
	t.Cleanup(func() {
		now, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("restoring %s: %v", path, err)
			return
		}
		restored := bytes.Replace(now, []byte(sep+line), nil, 1)
		if err := os.WriteFile(path, restored, 0o644); err != nil {
			t.Errorf("restoring %s: %v", path, err)
		}
		if bytes.Equal(now, append(append(bytes.Clone(orig), sep...), line...)) && !bytes.Equal(restored, orig) {
			t.Errorf("%s not restored byte for byte", path)
		}
	})
	if addrs, err := net.DefaultResolver.LookupHost(context.Background(), name); err != nil || len(addrs) == 0 || addrs[0] != "127.0.0.1" {
		t.Fatalf("%s resolves to %v (%v) after adding it to %s", name, addrs, err, path)
	}
}

// trustInDocker puts ca.crt where dockerd looks for host's CA until the
// test ends.
func trustInDocker(t *testing.T, host string, caPEM []byte) {
	t.Helper()
	dir := filepath.Join("/etc/docker/certs.d", host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
}

// h2Get GETs url with c and returns the status, protocol, serial of the
// server certificate and whether the connection was reused.
func h2Get(t *testing.T, c *http.Client, url string) (status int, proto, serial string, reused bool) {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber.String(), reused
}

func newTLSClient(ca *testpki.CA) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
}

// TestTLS: Slipway serving HTTPS itself (http.tls) under a name that is
// not loopback-looking: docker logs in, pushes and pulls trusting the CA
// through certs.d; verifying clients (skopeo, crane) succeed with the CA
// and crane fails without it; new certificates are picked up on SIGHUP and
// on a file change while an open HTTP/2 connection goes on.
func TestTLS(t *testing.T) {
	harness.SlipwayBinary(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "slipway integration CA")
	first := ca.Server(t, tlsHost, "127.0.0.1")
	certFile, keyFile := first.Files(t, dir, "server")
	caFile := filepath.Join(dir, "ca.crt")
	testpki.WriteFile(t, caFile, ca.PEM)
	addHostsEntry(t, tlsHost)

	reg := harness.StartOpts(t, harness.Options{
		NoPublicURL: true, // the realm follows the name and scheme the client used
		TLSRootCAs:  ca.Pool(),
		HTTPConfig:  "  tls:\n    cert_file: \"" + certFile + "\"\n    key_file: \"" + keyFile + "\"\n",
	})
	_, port, _ := net.SplitHostPort(reg.Host)
	host := net.JoinHostPort(tlsHost, port)
	base := "https://" + host
	trustInDocker(t, host, ca.PEM)

	tools := harness.NewTools(t)
	tools.RequireDocker()
	user := reg.User()

	t.Run("docker", func(t *testing.T) {
		ref := host + "/it/tls:1"
		imageID := buildScratchImage(t, tools, ref, dataFile)
		if out := tools.DockerLogin(host, user); !strings.Contains(out, "Login Succeeded") {
			t.Fatalf("docker login: %s", out)
		}
		pushDigest := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`), tools.Run("docker", "push", ref), "pushed digest")
		tools.Run("docker", "rmi", ref)
		if d := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), tools.Run("docker", "pull", ref), "pulled digest"); d != pushDigest {
			t.Errorf("docker pull digest %s, pushed %s", d, pushDigest)
		}
		if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", ref)); got != imageID {
			t.Errorf("pulled image ID %s, built %s", got, imageID)
		}
		// docker's requests reached the server (the access log has the
		// manifest PUT), and only over TLS: the listener refuses plain HTTP.
		if !strings.Contains(reg.Logs(), `"method":"PUT","path":"/v2/it/tls/manifests/1"`) {
			t.Error("no manifest PUT in the access log")
		}
		resp, err := http.Get("http://" + reg.Host + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %s, want 400 (client sent an HTTP request to an HTTPS server)", resp.Status)
		}

		// Verifying clients: skopeo reads the same certs.d; crane verifies
		// with the CA given through SSL_CERT_FILE, and fails without it.
		out := tools.RunCmd(harness.Cmd{Args: []string{"skopeo", "inspect", "--tls-verify=true", "--creds", user.String(), "docker://" + ref}})
		if !strings.Contains(out, pushDigest) {
			t.Errorf("skopeo inspect over verified TLS does not show %s:\n%s", pushDigest, out)
		}
		tools.CraneLogin(host, user)
		if d := strings.TrimSpace(tools.RunCmd(harness.Cmd{Args: []string{"crane", "digest", ref}, Env: []string{"SSL_CERT_FILE=" + caFile}})); d != pushDigest {
			t.Errorf("crane digest with the CA = %s, want %s", d, pushDigest)
		}
		stranger := filepath.Join(dir, "stranger.crt")
		testpki.WriteFile(t, stranger, testpki.NewCA(t, "another CA").PEM)
		for _, env := range [][]string{nil, {"SSL_CERT_FILE=" + stranger}} {
			out, err = tools.Exec(harness.Cmd{Args: []string{"crane", "digest", ref}, Env: env})
			if err == nil || !strings.Contains(out, "x509: certificate signed by unknown authority") {
				t.Errorf("crane digest without the CA (env %q): %v, want an x509 unknown authority error:\n%s", env, err, out)
			}
		}
	})

	t.Run("reload", func(t *testing.T) {
		open := newTLSClient(ca)
		defer open.CloseIdleConnections()
		status, proto, serial, _ := h2Get(t, open, base+"/healthz")
		if status != http.StatusOK || proto != "HTTP/2.0" || serial != first.Cert.SerialNumber.String() {
			t.Fatalf("GET /healthz: %d over %s, certificate %s; want 200 over HTTP/2 with the first certificate", status, proto, serial)
		}

		// SIGHUP, at once (the file poll takes up to 5s).
		second := ca.Server(t, tlsHost, "127.0.0.1")
		mark := len(reg.Logs())
		second.Write(t, certFile, keyFile)
		if err := syscall.Kill(reg.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, reg, mark, `"msg":"tls certificate reloaded","trigger":"SIGHUP"`, 5*time.Second)
		checkServes(t, ca, base, second)
		status, proto, serial, reused := h2Get(t, open, base+"/healthz")
		if status != http.StatusOK || proto != "HTTP/2.0" || !reused || serial != first.Cert.SerialNumber.String() {
			t.Fatalf("the open connection after SIGHUP: %d over %s, reused %t, certificate %s; want 200 on the same HTTP/2 connection with the first certificate",
				status, proto, reused, serial)
		}
		if !reg.Running() {
			t.Fatal("SIGHUP stopped the server")
		}

		// A broken key: the server keeps its certificate and says why.
		mark = len(reg.Logs())
		testpki.WriteFile(t, keyFile, []byte("not a key"))
		if err := syscall.Kill(reg.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, reg, mark, `"msg":"tls reload failed, keeping the previous certificate"`, 5*time.Second)
		checkServes(t, ca, base, second)

		// A file change alone, no signal.
		third := ca.Server(t, tlsHost, "127.0.0.1")
		mark = len(reg.Logs())
		third.Write(t, certFile, keyFile)
		waitForLog(t, reg, mark, `"msg":"tls certificate reloaded","trigger":"file change"`, 15*time.Second)
		checkServes(t, ca, base, third)
		if status, _, _, reused := h2Get(t, open, base+"/v2/"); status != http.StatusUnauthorized || !reused {
			t.Fatalf("the open connection after the file change: %d, reused %t; want 401 on the same connection", status, reused)
		}
		if d := strings.TrimSpace(tools.RunCmd(harness.Cmd{Args: []string{"crane", "digest", host + "/it/tls:1"}, Env: []string{"SSL_CERT_FILE=" + caFile}})); !strings.HasPrefix(d, "sha256:") {
			t.Errorf("crane digest after the reloads = %q", d)
		}
		for _, l := range strings.Split(reg.Logs(), "\n") {
			if strings.Contains(l, `"msg":"tls `) {
				t.Log(l)
			}
		}
	})
}

// checkServes fails unless a new connection to base gets leaf's certificate.
func checkServes(t *testing.T, ca *testpki.CA, base string, leaf *testpki.Leaf) {
	t.Helper()
	c := newTLSClient(ca)
	defer c.CloseIdleConnections()
	if _, _, serial, _ := h2Get(t, c, base+"/healthz"); serial != leaf.Cert.SerialNumber.String() {
		t.Fatalf("a new connection gets certificate %s, want %s", serial, leaf.Cert.SerialNumber)
	}
}

// waitForLog waits until the registry's log holds s after its first from
// bytes.
func waitForLog(t *testing.T, reg *harness.Registry, from int, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(reg.Logs()[from:], s) {
		if time.Now().After(deadline) {
			t.Fatalf("the registry did not log %s within %s", s, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
