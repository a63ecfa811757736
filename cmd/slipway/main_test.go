package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/config"
)

func noEnv(string) (string, bool) { return "", false }

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, nil, &out, &errb, noEnv); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "slipway dev") {
		t.Fatalf("version = %q", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"serve", "extra"}, {"serve", "--bogus"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, nil, &out, &errb, noEnv); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if errb.Len() == 0 {
			t.Errorf("%q: nothing on stderr", args)
		}
	}
}

func TestServeBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte("http:\n  addr: \":5000\"\nlog:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--config", path}, nil, &out, &errb, noEnv)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := path + ":4: log.level: must be one of"; !strings.Contains(errb.String(), want) {
		t.Fatalf("stderr %q lacks %q", errb.String(), want)
	}
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	env := map[string]string{
		"SLIPWAY_HTTP_ADDR":               "127.0.0.1:0",
		"SLIPWAY_HTTP_DRAIN_DELAY":        "0s", // nothing balances to it
		"SLIPWAY_STORAGE_FILESYSTEM_ROOT": t.TempDir(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"serve"}, nil, &out, &errb, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// TestBinary builds the real binary and checks what only a process shows:
// the -ldflags version and a clean exit 0 on SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "slipway")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/slipway/slipway/internal/buildinfo.version=v9.9.9-test", "-o", bin, ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	if b, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(b), "slipway v9.9.9-test ") {
		t.Fatalf("version: %q, %v", b, err)
	}

	cfg := filepath.Join(dir, "config.yml")
	yml := "http:\n  addr: 127.0.0.1:0\nstorage:\n  filesystem:\n    root: " + filepath.Join(dir, "data") + "\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The "listening" log line tells the port picked for :0; before it,
	// auth on by default created an admin and printed its password once.
	lines := bufio.NewScanner(stderr)
	addr, password := "", ""
	for addr == "" && lines.Scan() {
		var rec struct{ Msg, Addr, Password string }
		if json.Unmarshal(lines.Bytes(), &rec) == nil {
			if rec.Msg == "listening" {
				addr = rec.Addr
			}
			if rec.Password != "" {
				password = rec.Password
			}
		}
	}
	if addr == "" || password == "" {
		t.Fatalf("no listening line (%q) or no generated admin password on stderr", addr)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz = %d", resp.StatusCode)
	}
	// /v2/ wants a token; the admin gets one with the printed password.
	if code := get(t, "http://"+addr+"/v2/", ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without a token = %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/auth/token?service=slipway", nil)
	req.SetBasicAuth("admin", password)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.Token == "" {
		t.Fatalf("admin login = %d %v", resp.StatusCode, err)
	}
	if code := get(t, "http://"+addr+"/v2/", tok.Token); code != http.StatusOK {
		t.Fatalf("GET /v2/ with the admin's token = %d", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGTERM")
	}
}

func get(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeCreatesAdminFromEnv(t *testing.T) {
	root := t.TempDir()
	env := map[string]string{
		"SLIPWAY_HTTP_ADDR":               "127.0.0.1:0",
		"SLIPWAY_HTTP_DRAIN_DELAY":        "0s", // nothing balances to it
		"SLIPWAY_STORAGE_FILESYSTEM_ROOT": root,
		"SLIPWAY_ADMIN_PASSWORD":          "env-admin-password",
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"serve"}, nil, &out, &errb, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if strings.Contains(errb.String(), "env-admin-password") {
		t.Fatal("the admin password is in the log")
	}
	var rec struct {
		PasswordHash string `json:"password_hash"`
	}
	b, err := os.ReadFile(filepath.Join(root, "auth", "users", "admin"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil || bcrypt.CompareHashAndPassword([]byte(rec.PasswordHash), []byte("env-admin-password")) != nil {
		t.Fatalf("stored admin %q does not verify the env password: %v", b, err)
	}
	// The signing key followed the storage root.
	if fi, err := os.Stat(filepath.Join(root, "keys", "token.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v %v", fi, err)
	}
}

func TestPasswd(t *testing.T) {
	for _, input := range []string{"s3cret pass", "s3cret pass\n", "s3cret pass\r\n"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"passwd", "--cost", "10"}, strings.NewReader(input), &out, &errb, noEnv); code != 0 {
			t.Fatalf("%q: exit %d, stderr %q", input, code, errb.String())
		}
		hash := strings.TrimSuffix(out.String(), "\n")
		if !strings.HasPrefix(hash, "$2a$10$") || strings.Count(out.String(), "\n") != 1 {
			t.Fatalf("%q: output %q", input, out.String())
		}
		if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret pass")); err != nil {
			t.Fatalf("%q: hash does not verify: %v", input, err)
		}
		if !config.ValidBcryptHash(hash) {
			t.Fatalf("config would refuse %q", hash)
		}
	}
	for _, bad := range []string{"", "\n", "one\ntwo\n", strings.Repeat("x", 73)} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"passwd"}, strings.NewReader(bad), &out, &errb, noEnv); code != 1 || out.Len() != 0 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, out %q", bad, code, out.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"passwd", "--cost", "4"}, strings.NewReader("x"), &out, &errb, noEnv); code != 2 {
		t.Errorf("cost 4: exit %d", code)
	}
}
