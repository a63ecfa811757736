package harness

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// junitSuites is the part of the conformance suite's junit.xml we read.
type junitSuites struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Disabled int `xml:"disabled,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Status    string `xml:"status,attr"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// RunConformance runs the OCI conformance suite (bin:
// ConformanceBinary) against the registry at host (host:port, plain HTTP)
// as c, and requires 0 failures, 0 errors, no disabled workflow and no
// skipped case but the anonymous blob mount; label names the run's
// reports in LogDir. extra OCI_* settings come after ours (and before the
// caller's environment). See integration/conformance_test.go.
func RunConformance(t *testing.T, bin, host string, c Credentials, label string, extra []string) {
	t.Helper()
	tools := NewTools(t)

	version := os.Getenv("SLIPWAY_IT_OCI_VERSION")
	if version == "" {
		version = "dev"
	}
	results := t.TempDir()
	env := []string{
		"OCI_VERSION=" + version,
		"OCI_REGISTRY=" + host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/a",
		"OCI_REPO2=conformance/b",
		// The suite answers Bearer challenges with a GET to the realm
		// (Basic credentials, the challenge's scope) and caches the token
		// per repository and method.
		"OCI_USERNAME=" + c.Username,
		"OCI_PASSWORD=" + c.Password,
		"OCI_RESULTS_DIR=" + results,
		"OCI_LOG=warn",
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_DATA_SHA512=true",
	}
	env = append(env, extra...)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OCI_") {
			env = append(env, kv)
		}
	}
	// Run from the results dir so no stray oci-conformance.yaml is read.
	tools.Env = append(FilterOCI(tools.Env), env...)
	out, runErr := tools.Exec(Cmd{Args: []string{bin}, Dir: results, Timeout: 10 * time.Minute})

	// Keep the reports with the server logs.
	keep := filepath.Join(LogDir(), "conformance-"+Kind()+"-"+label)
	_ = os.MkdirAll(keep, 0o755)
	for _, f := range []string{"junit.xml", "report.html", "results.yaml"} {
		if b, err := os.ReadFile(filepath.Join(results, f)); err == nil {
			_ = os.WriteFile(filepath.Join(keep, f), b, 0o644)
		}
	}
	_ = os.WriteFile(filepath.Join(keep, "output.txt"), []byte(out), 0o644)

	data, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance wrote no junit.xml (run error: %v): %v\noutput:\n%s", runErr, err, out)
	}
	var ju junitSuites
	if err := xml.Unmarshal(data, &ju); err != nil {
		t.Fatalf("parsing junit.xml: %v", err)
	}
	if ju.Tests == 0 {
		t.Fatalf("conformance ran no test\noutput:\n%s", out)
	}
	pass := ju.Tests - ju.Failures - ju.Errors - ju.Skipped - ju.Disabled
	t.Logf("OCI conformance (%s on %s, profile %s%s): %d tests: %d passed, %d failed, %d errors, %d skipped, %d disabled",
		Kind(), label, version, strings.Join(append([]string{""}, extra...), " + "), ju.Tests, pass, ju.Failures, ju.Errors, ju.Skipped, ju.Disabled)
	t.Logf("API and data status:\n%s", reportSection(out))
	t.Logf("reports: %s", keep)

	if ju.Failures > 0 || ju.Errors > 0 {
		const maxShown = 40
		var failed []string
		n := 0
		for _, s := range ju.Suites {
			for _, c := range s.Cases {
				if c.Status == "failure" || c.Status == "error" {
					if n++; n > maxShown {
						continue
					}
					msg := strings.TrimSpace(c.SystemOut)
					if len(msg) > 400 {
						msg = msg[:400] + "..."
					}
					failed = append(failed, fmt.Sprintf("%s [%s]\n    %s", c.Name, c.Status, strings.ReplaceAll(msg, "\n", "\n    ")))
				}
			}
		}
		if n > maxShown {
			failed = append(failed, fmt.Sprintf("... and %d more: see %s", n-maxShown, filepath.Join(keep, "output.txt")))
		}
		t.Errorf("OCI conformance: %d failures, %d errors (want 0); report.html in %s\n%s",
			ju.Failures, ju.Errors, keep, strings.Join(failed, "\n"))
	} else if ju.Disabled > 0 && version == "dev" {
		t.Errorf("OCI conformance: %d workflows disabled, want every workflow to run", ju.Disabled)
	} else if skipped := unexpectedSkips(ju); len(skipped) > 0 && version == "dev" && !IsStock() {
		// A skip is how the suite records a fallback (a mount answered
		// 202, for example): only the anonymous mount may fall back.
		t.Errorf("OCI conformance: skipped cases other than the anonymous blob mount:\n%s", strings.Join(skipped, "\n"))
	} else if runErr != nil {
		t.Errorf("conformance binary failed although junit.xml shows no failure: %v\n%s", runErr, out)
	}
}

// unexpectedSkips lists the skipped cases other than the anonymous blob
// mount (a mount without "from" falls back to an upload, on purpose: see
// the README).
func unexpectedSkips(ju junitSuites) []string {
	var out []string
	for _, s := range ju.Suites {
		for _, c := range s.Cases {
			if c.Status == "skipped" && !strings.Contains(c.Name, "/mount anonymous/") {
				out = append(out, fmt.Sprintf("%s: %s", c.Name, strings.TrimSpace(c.SystemOut)))
			}
		}
	}
	return out
}

// reportSection returns the suite's "API conformance" and "Data
// conformance" tables from its stdout.
func reportSection(out string) string {
	i := strings.Index(out, "OCI Conformance Result:")
	if i < 0 {
		return "(no summary in output)"
	}
	s := out[i:]
	s = regexp.MustCompile(`\.{2,}`).ReplaceAllString(s, " ")
	return strings.TrimSpace(s)
}
