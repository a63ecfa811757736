package harness

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func (r *Registry) start() error {
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if running {
		return errors.New("registry already running")
	}
	logf, err := os.OpenFile(r.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	r.starts++
	fmt.Fprintf(logf, "===== harness: start #%d of %s on %s, %s, %s\n", r.starts, kind, r.Host, r.storageDesc(), time.Now().Format(time.RFC3339Nano))

	var cmd *exec.Cmd
	switch kind {
	case KindStock:
		cmd = exec.Command(stockBin, "serve", r.cfgPath)
	default:
		cmd = exec.Command(slipwayBin, "serve", "--config", r.cfgPath)
	}
	// The server must listen where the config says, whatever the caller's
	// environment holds.
	cmd.Env = FilterEnv(os.Environ(), "SLIPWAY_HTTP_", "SLIPWAY_STORAGE_", "SLIPWAY_LOG_", "SLIPWAY_AUTH_", "SLIPWAY_ADMIN_PASSWORD=", "SLIPWAY_STAGES", "REGISTRY_", "OTEL_")
	if kind == KindStock {
		// distribution v3 exports traces to localhost:4318 unless told not to.
		cmd.Env = append(cmd.Env, "OTEL_TRACES_EXPORTER=none")
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group (Kill reaches its children); killed with the
	// test binary if that dies without cleaning up (a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", kind, err)
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.done, r.waitErr = cmd, done, nil
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		r.mu.Lock()
		r.waitErr = err
		r.mu.Unlock()
		close(done)
	}()

	// Slipway answers /healthz; the stock registry has no such route on its
	// main port, so wait for /v2/ there.
	probe := "/healthz"
	if kind == KindStock {
		probe = "/v2/"
	}
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	if r.tlsRoots != nil {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.tlsRoots}}
		defer client.CloseIdleConnections()
	}
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			r.mu.Lock()
			r.cmd = nil
			werr := r.waitErr
			r.mu.Unlock()
			return fmt.Errorf("%s exited before it answered %s: %v", kind, probe, werr)
		default:
		}
		resp, err := client.Get(r.URL() + probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("GET %s: %s", probe, resp.Status)
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Kill()
	return fmt.Errorf("%s did not answer GET %s with 200 within 30s: %v", kind, probe, lastErr)
}

// Stop sends SIGTERM and waits (up to 30s, then SIGKILL). It is a no-op if
// the server is not running. A server that exits with an error after
// SIGTERM is reported.
func (r *Registry) Stop() error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	closeIdleClientConns()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-done:
		r.mu.Lock()
		err = r.waitErr
		r.mu.Unlock()
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = errors.New("did not exit within 30s of SIGTERM; killed")
	}
	r.mu.Lock()
	r.cmd = nil
	r.mu.Unlock()
	// The stock registry only drains on SIGTERM with http.draintimeout set,
	// and then waits out idle keep-alive connections and exits 1: let it die
	// of the signal instead, and don't count that against it.
	var ee *exec.ExitError
	if kind == KindStock && errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			err = nil
		}
	}
	return err
}

// closeIdleClientConns closes the idle keep-alive connections of the HTTP
// clients in this process (net/http's and go-containerregistry's default
// transports). A connection dialed but never used (the transport dials
// ahead when requests run in parallel) stays "new" on the server side, and
// http.Server.Shutdown waits 5s before it counts such a connection as idle:
// closing them first keeps a graceful stop from waiting out those 5s.
func closeIdleClientConns() {
	for _, rt := range []http.RoundTripper{http.DefaultTransport, remote.DefaultTransport} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// Terminate sends SIGTERM and returns at once: the graceful shutdown runs
// while the test watches (WaitExit).
func (r *Registry) Terminate() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// WaitExit waits up to d for the server to exit (after Terminate) and
// returns its exit error; it kills the server and says so if it is still
// running after d.
func (r *Registry) WaitExit(d time.Duration) error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
	case <-time.After(d):
		r.Kill()
		return fmt.Errorf("still running %s after SIGTERM; killed", d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmd = nil
	return r.waitErr
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (r *Registry) Kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	r.mu.Lock()
	r.cmd = nil
	r.mu.Unlock()
}

// Restart starts the server again on the same port and storage root (after
// Stop or Kill; a running server is stopped first).
func (r *Registry) Restart() {
	r.t.Helper()
	if err := r.Stop(); err != nil {
		r.t.Logf("stopping before restart: %v", err)
	}
	if err := r.start(); err != nil {
		r.t.Fatalf("restart: %v\n%s log (%s):\n%s", err, kind, r.LogPath, tail(r.LogPath, 80))
	}
}

// SetWriteDelay makes every storage write of Slipway wait d, from the next
// Restart on, so that a Kill lands inside a push. 0 turns it off.
func (r *Registry) SetWriteDelay(d time.Duration) {
	r.t.Helper()
	if kind != KindSlipway {
		r.t.Fatalf("write delays are a Slipway test hook")
	}
	r.writeDelay = d
	if err := r.writeConfig(); err != nil {
		r.t.Fatal(err)
	}
}

// Running reports whether the server process is alive.
func (r *Registry) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// PID is the process id of the running server, 0 when it is not running
// (the soak samples /proc/<pid>/status for its memory).
func (r *Registry) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Logs returns the server's output so far.
func (r *Registry) Logs() string {
	b, _ := os.ReadFile(r.LogPath)
	return string(b)
}
