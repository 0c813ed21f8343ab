package sla

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ParseRange reads a range in loc: "2026-11" (a calendar month),
// "2026-11-23" (a day), or "FROM..TO", each end a day or an RFC 3339 time
// (TO excluded).
func ParseRange(s string, loc *time.Location) (Range, error) {
	if from, to, ok := strings.Cut(s, ".."); ok {
		a, err := parseTime(from, loc)
		if err != nil {
			return Range{}, fmt.Errorf("invalid range %q: %w", s, err)
		}
		b, err := parseTime(to, loc)
		if err != nil {
			return Range{}, fmt.Errorf("invalid range %q: %w", s, err)
		}
		if !a.Before(b) {
			return Range{}, fmt.Errorf("invalid range %q: it ends before it starts", s)
		}
		return Range{s, a, b}, nil
	}
	if m, err := time.ParseInLocation("2006-01", s, loc); err == nil {
		return Range{s, m, m.AddDate(0, 1, 0)}, nil
	}
	if d, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return Range{s, d, d.AddDate(0, 0, 1)}, nil
	}
	return Range{}, fmt.Errorf("invalid range %q: want YYYY-MM, YYYY-MM-DD or FROM..TO", s)
}

func parseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor an RFC 3339 time", s)
	}
	return t, nil
}

// Months are the calendar months from the month of a to that of b, both
// "YYYY-MM", in loc: a month-by-month report.
func Months(a, b string, loc *time.Location) ([]Range, error) {
	first, err := ParseRange(a, loc)
	if err != nil || len(a) != 7 {
		return nil, fmt.Errorf("invalid --months %q: want YYYY-MM..YYYY-MM", a+".."+b)
	}
	last, err := ParseRange(b, loc)
	if err != nil || len(b) != 7 || last.From.Before(first.From) {
		return nil, fmt.Errorf("invalid --months %q: want YYYY-MM..YYYY-MM, the first not after the last", a+".."+b)
	}
	var out []Range
	for m := first.From; !m.After(last.From); m = m.AddDate(0, 1, 0) {
		out = append(out, Range{m.Format("2006-01"), m, m.AddDate(0, 1, 0)})
	}
	return out, nil
}

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

func cell(c string, v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case c == "count":
		return strconv.FormatInt(int64(v), 10)
	case strings.HasPrefix(c, "within "):
		return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func groupNames(by []string, g map[string]string) []string {
	out := make([]string, len(by))
	for i, b := range by {
		out[i] = g[b]
	}
	return out
}

// WriteText writes one row per range and group; with exactly two ranges,
// the comparison layout: each group's values side by side, and B/A.
func WriteText(w io.Writer, results []Result, by []string, ranges []Range) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := columns(results)
	if len(ranges) == 2 {
		writeComparison(tw, results, by, ranges, cols)
		return tw.Flush()
	}
	head, rows := Rows(results, by)
	for _, row := range append([][]string{head}, rows...) {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	return tw.Flush()
}

// Rows are the header and the rows of the text table: one row per range
// and group, values as text.
func Rows(results []Result, by []string) (head []string, rows [][]string) {
	cols := columns(results)
	head = append(append([]string{"range"}, by...), cols...)
	for _, r := range results {
		row := append([]string{r.Range}, groupNames(by, r.Group)...)
		for _, c := range cols {
			row = append(row, cell(c, r.value(c)))
		}
		rows = append(rows, row)
	}
	return head, rows
}

func writeComparison(w io.Writer, results []Result, by []string, ranges []Range, cols []string) {
	type pair struct{ a, b *Result }
	pairs := map[string]*pair{}
	var keys []string
	for i := range results {
		r := &results[i]
		k := strings.Join(groupNames(by, r.Group), "\x00")
		p := pairs[k]
		if p == nil {
			p = &pair{}
			pairs[k] = p
			keys = append(keys, k)
		}
		if r.Range == ranges[0].Name {
			p.a = r
		} else {
			p.b = r
		}
	}
	sort.Strings(keys)
	head := append(append([]string{}, by...), "", "A: "+ranges[0].Name, "B: "+ranges[1].Name, "B/A")
	fmt.Fprintln(w, strings.Join(head, "\t")+"\t")
	for _, k := range keys {
		p := pairs[k]
		names := strings.Split(k, "\x00")
		if len(by) == 0 {
			names = nil
		}
		for _, c := range cols {
			a, b := math.NaN(), math.NaN()
			if p.a != nil {
				a = p.a.value(c)
			}
			if p.b != nil {
				b = p.b.value(c)
			}
			ratio := "-"
			if a > 0 && !math.IsNaN(b) {
				ratio = strconv.FormatFloat(b/a, 'f', 3, 64)
			}
			row := append(append([]string{}, names...), c, cell(c, a), cell(c, b), ratio)
			fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
		}
	}
}

// WriteCSV writes a header and one row per range and group; shares are
// fractions, quantiles milliseconds, empty where there are no latencies.
func WriteCSV(w io.Writer, results []Result, by []string) error {
	cw := csv.NewWriter(w)
	cols := columns(results)
	head := append(append([]string{"range", "from", "to"}, by...), cols...)
	for i, c := range head {
		head[i] = strings.ReplaceAll(c, " ", "_")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, r := range results {
		row := append([]string{r.Range, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339)}, groupNames(by, r.Group)...)
		for _, c := range cols {
			v := r.value(c)
			switch {
			case math.IsNaN(v):
				row = append(row, "")
			case c == "count":
				row = append(row, strconv.FormatInt(r.Count, 10))
			default:
				row = append(row, strconv.FormatFloat(v, 'g', 6, 64))
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the results as a JSON array.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if results == nil {
		results = []Result{}
	}
	return enc.Encode(results)
}
