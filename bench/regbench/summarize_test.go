package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarizeRatios(t *testing.T) {
	lines := `# - machine facts are comments
{"registry":"stock","rep":1,"scenario":"push-16m","metric":"MiB/s","value":100,"higher_is_better":true,"background_busy_pct":0}
{"registry":"stock","rep":2,"scenario":"push-16m","metric":"MiB/s","value":300,"higher_is_better":true,"background_busy_pct":0}
{"registry":"stock","rep":3,"scenario":"push-16m","metric":"MiB/s","value":200,"higher_is_better":true,"background_busy_pct":0}
{"registry":"slipway","rep":1,"scenario":"push-16m","metric":"MiB/s","value":150,"higher_is_better":true,"background_busy_pct":0}
{"registry":"stock","rep":1,"scenario":"copy-10","metric":"ms","value":20,"higher_is_better":false,"background_busy_pct":0}
{"registry":"slipway","rep":1,"scenario":"copy-10","metric":"ms","value":10,"higher_is_better":false,"background_busy_pct":50}
{"registry":"stock","rep":1,"scenario":"manifest-get","metric":"req/s","value":1000,"higher_is_better":true,"background_busy_pct":0}
{"registry":"slipway","rep":1,"scenario":"manifest-get","phase":"run","error":"GET x: status 500"}
`
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := summarize(path, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| **200.0** (100.0, 300.0, 200.0) | **150.0** (150.0) | 0.75× | **NO** |", // median, Slipway/stock
		"| **20.0** (20.0) | **10.0** (10.0) | 2.00× | yes |",                      // time: stock/Slipway
		"| **1000** (1000) | FAIL (1 of 1 runs) | — | **NO** |",
		"slipway copy-10 rep 1 (50% before",
		"- slipway manifest-get: rep 1 run: GET x: status 500",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "pull-16m") || strings.Contains(got, "Blob pull") {
		t.Errorf("rows without results should be left out:\n%s", got)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	sortDurations(d)
	if p := percentile(d, 0.5); p < 50 || p > 51 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 0.99); p < 99 || p > 100 {
		t.Errorf("p99 = %v", p)
	}
}
