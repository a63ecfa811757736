package config

import (
	"strings"
	"testing"
)

func TestGateErrorsNameKeyAndLine(t *testing.T) {
	stage := "stages:\n  - name: a\n    prefix: a/\n    gates:\n" // lines 1-4
	cases := []struct{ name, file, want string }{
		{"no key", stage + "      signed_by:\n        - name: ci\n", `c.yml:6: stages[0].gates.signed_by[0]: needs key`},
		{"both", stage + "      signed_by:\n        - key: x\n          key_file: /etc/hostname\n", `stages[0].gates.signed_by[0].key_file: set key or key_file, not both`},
		{"missing file", stage + "      signed_by:\n        - key_file: /nonexistent/k.pem\n", `c.yml:6: stages[0].gates.signed_by[0].key_file: stat /nonexistent/k.pem`},
		{"not pem", stage + "      signed_by:\n        - key: abc\n", `c.yml:6: stages[0].gates.signed_by[0].key: must be a PEM public key`},
		{"name", stage + "      signed_by:\n        - name: \"a b\"\n          key: \"-----BEGIN PUBLIC KEY-----\"\n", `stages[0].gates.signed_by[0].name: must be 1-64`},
		{"attestations need keys", stage + "      attestations: [\"https://slsa.dev/provenance/v1\"]\n", `c.yml:5: stages[0].gates.attestations: need signed_by`},
		{"artifact type", stage + "      referrers:\n        - artifact_type: report\n", `c.yml:6: stages[0].gates.referrers[0].artifact_type: must be a media type`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yml", []byte(tc.file), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant one containing %q", err, tc.want)
			}
		})
	}
	ok := stage + "      signed_by:\n        - name: ci\n          key: \"-----BEGIN PUBLIC KEY-----\"\n      attestations: [\"https://slsa.dev/provenance/v1\"]\n" +
		"      referrers:\n        - artifact_type: application/vnd.slipway.test-report\n          annotations: {result: pass}\n"
	if _, err := Parse("c.yml", []byte(ok), nil); err != nil {
		t.Fatalf("good gates refused: %v", err)
	}
}
