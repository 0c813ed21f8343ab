package sla

import (
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/report"
)

// columns are the value columns of a result, in order.
func columns(results []Result) []string {
	cols := []string{"count"}
	for _, q := range Quantiles {
		cols = append(cols, QuantileName(q))
	}
	seen := map[string]bool{}
	var within []string
	for _, r := range results {
		for w := range r.Within {
			if !seen[w] {
				seen[w] = true
				within = append(within, w)
			}
		}
	}
	sort.Slice(within, func(i, j int) bool {
		a, _ := time.ParseDuration(within[i])
		b, _ := time.ParseDuration(within[j])
		return a < b
	})
	for _, w := range within {
		cols = append(cols, "within "+w)
	}
	return cols
}

// value is column c of r; NaN when r has no latencies.
func (r Result) value(c string) float64 {
	if c == "count" {
		return float64(r.Count)
	}
	if w, ok := strings.CutPrefix(c, "within "); ok {
		if v, ok := r.Within[w]; ok {
			return v
		}
		return math.NaN()
	}
	if v, ok := r.Quantiles[c]; ok {
		return v
	}
	return math.NaN()
}

// Table is the results as a report table: count, the quantiles (ms),
// the shares within each threshold.
func Table(results []Result) report.Table {
	var t report.Table
	for _, c := range columns(results) {
		kind := report.Number
		switch {
		case c == "count":
			kind = report.Count
		case strings.HasPrefix(c, "within "):
			kind = report.Share
		}
		t.Columns = append(t.Columns, report.Column{Name: c, Kind: kind})
	}
	for _, r := range results {
		row := report.Row{Range: r.Range, From: r.From, To: r.To, Group: r.Group, Values: map[string]float64{}}
		for _, c := range t.Columns {
			if v := r.value(c.Name); !math.IsNaN(v) {
				row.Values[c.Name] = v
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}
