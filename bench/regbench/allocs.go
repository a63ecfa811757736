package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
)

// allocs are the Go runtime's cumulative allocation counters, as a
// registry's Prometheus endpoint exports them.
type allocs struct{ bytes, mallocs float64 }

// scrapeAllocs reads go_memstats_alloc_bytes_total and
// go_memstats_mallocs_total from a /metrics URL ("" or a failure: false).
func scrapeAllocs(ctx context.Context, url string) (allocs, bool) {
	var a allocs
	if url == "" {
		return a, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return a, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return a, false
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_alloc_bytes_total":
			a.bytes, found = v, found+1
		case "go_memstats_mallocs_total":
			a.mallocs, found = v, found+1
		}
	}
	return a, resp.StatusCode == http.StatusOK && found == 2
}
