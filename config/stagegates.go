package config

import (
	"fmt"
	"regexp"
	"strings"
)

// mediaType is an OCI media type (image-spec's descriptor rule, RFC 6838):
// what a referrer gate's artifact_type must look like.
var mediaType = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// gateProblems checks the shape of stages[i].gates (key is "stages[i]").
// The keys themselves are parsed by package gate (gate.New), which serve
// calls at startup with errors naming the same keys.
func gateProblems(key string, g Gates) []problem {
	var ps []problem
	add := func(k, format string, args ...any) {
		ps = append(ps, problem{key + ".gates." + k, fmt.Sprintf(format, args...)})
	}
	names := map[string]int{}
	for i, k := range g.SignedBy {
		at := fmt.Sprintf("signed_by[%d]", i)
		switch {
		case k.Key == "" && k.KeyFile == "":
			add(at, "needs key (an inline PEM public key) or key_file")
		case k.Key != "" && k.KeyFile != "":
			add(at+".key_file", "set key or key_file, not both")
		case k.KeyFile != "":
			if err := regularFile(k.KeyFile); err != nil {
				add(at+".key_file", "%s", oneLine(err))
			}
		case !strings.Contains(k.Key, "-----BEGIN "):
			add(at+".key", "must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
		}
		if k.Name == "" {
			continue
		}
		if !userName.MatchString(k.Name) {
			add(at+".name", "must be 1-64 of A-Z a-z 0-9 . _ @ -, got %q", k.Name)
		} else if j, dup := names[k.Name]; dup {
			add(at+".name", "%q already names signed_by[%d]", k.Name, j)
		} else {
			names[k.Name] = i
		}
	}
	if len(g.Attestations) > 0 && len(g.SignedBy) == 0 {
		add("attestations", "need signed_by: an attestation must be signed by one of the stage's keys")
	}
	for i, t := range g.Attestations {
		if strings.TrimSpace(t) != t || t == "" {
			add(fmt.Sprintf("attestations[%d]", i), "must be an in-toto predicate type like \"https://slsa.dev/provenance/v1\", got %q", t)
		}
	}
	for i, r := range g.Referrers {
		at := fmt.Sprintf("referrers[%d]", i)
		if !mediaType.MatchString(r.ArtifactType) {
			add(at+".artifact_type", "must be a media type like \"application/vnd.example.report\", got %q", r.ArtifactType)
		}
		for k := range r.Annotations {
			if k == "" {
				add(at+".annotations", "an annotation key is empty")
			}
		}
	}
	return ps
}
