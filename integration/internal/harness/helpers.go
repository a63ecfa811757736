package harness

import (
	cryptorand "crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

// FreePort is a loopback TCP port nothing listens on (just released), for
// servers a test starts itself (e.g. a container on the host network).
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freePortsErr is n distinct free ports outside a test (0 for any it
// could not get: the bind then fails with a clear error). Every listener
// stays open until all are picked, so no port is handed out twice.
func freePortsErr(n int) []int {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i, l := range lines {
		if len(l) > 500 {
			lines[i] = l[:500] + "..."
		}
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Sanitize makes name (a test name) usable in a file name.
func Sanitize(name string) string {
	return regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(name, "_")
}

// FilterEnv is env without the variables whose names start with one of
// dropPrefixes.
func FilterEnv(env []string, dropPrefixes ...string) []string {
	out := env[:0:0]
outer:
	for _, kv := range env {
		for _, p := range dropPrefixes {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}
