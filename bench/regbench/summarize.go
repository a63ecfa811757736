package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// busyPct: a run that started with more CPU than this busy elsewhere is
// flagged under the table.
const busyPct = 10

// rowNames describe each scenario in the table, in table order.
var rowNames = []struct{ scenario, name string }{
	{"push-16m", "Blob push, 16 MiB × 4 parallel (64 blobs)"},
	{"push-256k", "Blob push, 256 KiB × 8 parallel (1024 blobs)"},
	{"pull-16m", "Blob pull, 16 MiB × 4 parallel (64 blobs)"},
	{"pull-256k", "Blob pull, 256 KiB × 8 parallel (1024 blobs)"},
	{"manifest-head", "Manifest HEAD by tag, 16 clients"},
	{"manifest-get", "Manifest GET by tag, 16 clients"},
	{"copy-10", "crane copy of a 10-layer image (cross-repo mounts), median of 5"},
}

// Labels run.sh gives the two registries, in column order.
const (
	labelStock   = "stock"
	labelSlipway = "slipway"
)

type cell struct {
	values []float64
	p50    []float64
	p99    []float64
	errors []string
	metric string
	higher bool
}

func (c *cell) median() float64      { return median(c.values) }
func (c *cell) ok() bool             { return c != nil && len(c.errors) == 0 && len(c.values) > 0 }
func (c *cell) p(v []float64) string { return fmt.Sprintf("%.2f", median(v)) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func format(metric string, v float64) string {
	switch metric {
	case "req/s":
		return fmt.Sprintf("%.0f", v)
	case "ms":
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func (c *cell) String() string {
	if c == nil {
		return "pending"
	}
	if len(c.errors) > 0 {
		return fmt.Sprintf("FAIL (%d of %d runs)", len(c.errors), len(c.errors)+len(c.values))
	}
	runs := make([]string, len(c.values))
	for i, v := range c.values {
		runs[i] = format(c.metric, v)
	}
	return fmt.Sprintf("**%s** (%s)", format(c.metric, c.median()), strings.Join(runs, ", "))
}

// summarize prints the Markdown tables for a results file.
func summarize(path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cells := map[string]map[string]*cell{} // scenario -> registry -> cell
	var busy []string                      // runs measured on a busy machine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || !strings.HasPrefix(line, "{") {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if cells[r.Scenario] == nil {
			cells[r.Scenario] = map[string]*cell{}
		}
		c := cells[r.Scenario][r.Registry]
		if c == nil {
			c = &cell{}
			cells[r.Scenario][r.Registry] = c
		}
		if r.Error != "" {
			msg := r.Phase + ": " + r.Error
			if len(msg) > 400 {
				msg = msg[:400] + "…"
			}
			c.errors = append(c.errors, fmt.Sprintf("rep %d %s", r.Rep, msg))
			continue
		}
		if during := r.OtherCPUPct; r.BackgroundBusyPct > busyPct || during != nil && *during > busyPct {
			d := "?"
			if during != nil {
				d = fmt.Sprintf("%.0f%%", *during)
			}
			note := fmt.Sprintf("%s %s rep %d (%d%% before, %s during", r.Registry, r.Scenario, r.Rep, r.BackgroundBusyPct, d)
			if during != nil && *during > busyPct && len(r.OtherTop) > 0 {
				note += ": " + strings.Join(r.OtherTop, ", ")
			}
			busy = append(busy, note+")")
		}
		c.values = append(c.values, r.Value)
		c.p50 = append(c.p50, r.P50ms)
		c.p99 = append(c.p99, r.P99ms)
		c.metric = r.Metric
		c.higher = r.HigherIsBetter
	}
	if err := sc.Err(); err != nil {
		return err
	}

	fmt.Fprintln(w, "| Row | Unit | Stock v3.1.2: median (runs) | Slipway: median (runs) | Slipway/stock | ≥ 1.0 |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | :---: |")
	for _, row := range rowNames {
		st, sl := cells[row.scenario][labelStock], cells[row.scenario][labelSlipway]
		if st == nil && sl == nil {
			continue
		}
		unit := ""
		for _, c := range []*cell{st, sl} {
			if c != nil && c.metric != "" {
				unit = c.metric
				if !c.higher {
					unit += ", lower is better"
				}
			}
		}
		ratio, verdict := "—", "—"
		if st.ok() && sl.ok() {
			var r float64
			if st.higher {
				r = sl.median() / st.median()
			} else {
				r = st.median() / sl.median()
			}
			ratio = fmt.Sprintf("%.2f×", r)
			verdict = "yes"
			if r < 1.0 {
				verdict = "**NO**"
			}
		} else if (st != nil && len(st.errors) > 0) || (sl != nil && len(sl.errors) > 0) {
			verdict = "**NO**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", row.name, unit, st, sl, ratio, verdict)
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Per-request latency, median over runs of each run's p50 / p99 (ms):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| Row | Stock p50 | Stock p99 | Slipway p50 | Slipway p99 |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	for _, row := range rowNames {
		if row.scenario == "copy-10" {
			continue
		}
		st, sl := cells[row.scenario][labelStock], cells[row.scenario][labelSlipway]
		if st == nil && sl == nil {
			continue
		}
		cols := make([]string, 0, 4)
		for _, c := range []*cell{st, sl} {
			if c.ok() {
				cols = append(cols, c.p(c.p50), c.p(c.p99))
			} else {
				cols = append(cols, "—", "—")
			}
		}
		fmt.Fprintf(w, "| %s | %s |\n", row.name, strings.Join(cols, " | "))
	}

	if len(busy) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Runs where other processes used more than %d%% of the machine's CPU just before or during the timed part (user processes; the registries' own kernel writeback is not counted): %s.\n", busyPct, strings.Join(busy, "; "))
	}

	var errs []string
	for _, row := range rowNames {
		for _, reg := range []string{labelStock, labelSlipway} {
			if c := cells[row.scenario][reg]; c != nil {
				for _, e := range c.errors {
					errs = append(errs, fmt.Sprintf("- %s %s: %s", reg, row.scenario, e))
				}
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Failures:")
		fmt.Fprintln(w)
		for _, e := range errs {
			fmt.Fprintln(w, e)
		}
	}
	return nil
}
