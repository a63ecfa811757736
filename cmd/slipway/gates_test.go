package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeBadGateKey: a gate key that cannot be read or parsed stops
// serve with a message naming the configuration key.
func TestServeBadGateKey(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pub")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ keyLine, want string }{
		{"key_file: " + filepath.Join(dir, "missing.pub"), "stages[1].gates.signed_by[0].key_file"},
		{"key_file: " + garbage, "stages[1].gates.signed_by[0].key_file"},
		{`key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"`, "stages[1].gates.signed_by[0].key"},
	} {
		path := filepath.Join(dir, "config.yml")
		yml := "http:\n  addr: 127.0.0.1:0\nstorage:\n  filesystem:\n    root: " + filepath.Join(dir, "data") + "\n" +
			"stages:\n  - name: staging\n    prefix: staging/\n  - name: production\n    prefix: production/\n    promote_from: [staging]\n" +
			"    gates:\n      signed_by:\n        - name: ci\n          " + c.keyLine + "\n"
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"serve", "--config", path}, nil, &out, &errb, noEnv)
		if code != 1 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and a message naming %s", c.keyLine, code, errb.String(), c.want)
		}
	}
}
