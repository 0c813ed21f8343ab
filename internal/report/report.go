// Package report is what the operators' reports share: time ranges as
// they are written on the command line, and tables of values per range
// and group, written as text (with a side-by-side comparison of two
// ranges), CSV or JSON. mailtick sla and mailtick deliverability fill
// them.
package report

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

// Range is a named time range [From, To).
type Range struct {
	Name     string
	From, To time.Time
}

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

// Kind says how a column's values are written.
type Kind int

const (
	Count  Kind = iota // an integer
	Share              // a fraction, written as a percentage
	Number             // one decimal
	Text               // Row.Texts
)

// Column is one value column.
type Column struct {
	Name string
	Kind Kind
}

// Row is one range and group's values; a value absent or NaN is written
// "-" (text) or empty (CSV).
type Row struct {
	Range    string
	From, To time.Time
	Group    map[string]string
	Values   map[string]float64
	Texts    map[string]string
}

// Table is the columns and rows of a report.
type Table struct {
	Columns []Column
	Rows    []Row
}

func (r Row) value(c Column) float64 {
	if v, ok := r.Values[c.Name]; ok {
		return v
	}
	return math.NaN()
}

func cell(r Row, c Column) string {
	if c.Kind == Text {
		if s := r.Texts[c.Name]; s != "" {
			return s
		}
		return "-"
	}
	return number(c, r.value(c))
}

func number(c Column, v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case c.Kind == Count:
		return strconv.FormatInt(int64(v), 10)
	case c.Kind == Share:
		return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// groupNames are a group's values of by; in text, a group without the
// tag (events that had none) is "(none)".
func groupNames(by []string, g map[string]string) []string {
	out := make([]string, len(by))
	for i, b := range by {
		out[i] = g[b]
	}
	return out
}

func textGroupNames(by []string, g map[string]string) []string {
	out := groupNames(by, g)
	for i, v := range out {
		if v == "" {
			out[i] = "(none)"
		}
	}
	return out
}

// WriteText writes one row per range and group; with exactly two ranges,
// the comparison layout: each group's values side by side, and B/A.
func (t Table) WriteText(w io.Writer, by []string, ranges []Range) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(ranges) == 2 {
		t.writeComparison(tw, by, ranges)
		return tw.Flush()
	}
	head, rows := t.TextRows(by)
	for _, row := range append([][]string{head}, rows...) {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	return tw.Flush()
}

// TextRows are the header and the rows of the text table: one row per
// range and group, values as text.
func (t Table) TextRows(by []string) (head []string, rows [][]string) {
	head = append([]string{"range"}, by...)
	for _, c := range t.Columns {
		head = append(head, c.Name)
	}
	for _, r := range t.Rows {
		row := append([]string{r.Range}, textGroupNames(by, r.Group)...)
		for _, c := range t.Columns {
			row = append(row, cell(r, c))
		}
		rows = append(rows, row)
	}
	return head, rows
}

func (t Table) writeComparison(w io.Writer, by []string, ranges []Range) {
	type pair struct{ a, b *Row }
	pairs := map[string]*pair{}
	var keys []string
	for i := range t.Rows {
		r := &t.Rows[i]
		k := strings.Join(textGroupNames(by, r.Group), "\x00")
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
		for _, c := range t.Columns {
			ca, cb, ratio := "-", "-", "-"
			a, b := math.NaN(), math.NaN()
			if p.a != nil {
				a, ca = p.a.value(c), cell(*p.a, c)
			}
			if p.b != nil {
				b, cb = p.b.value(c), cell(*p.b, c)
			}
			if c.Kind != Text && a > 0 && !math.IsNaN(b) {
				ratio = strconv.FormatFloat(b/a, 'f', 3, 64)
			}
			row := append(append([]string{}, names...), c.Name, ca, cb, ratio)
			fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
		}
	}
}

// WriteCSV writes a header and one row per range and group; shares are
// fractions, empty where there is no value.
func (t Table) WriteCSV(w io.Writer, by []string) error {
	cw := csv.NewWriter(w)
	head := append([]string{"range", "from", "to"}, by...)
	for _, c := range t.Columns {
		head = append(head, strings.ReplaceAll(c.Name, " ", "_"))
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, r := range t.Rows {
		row := append([]string{r.Range, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339)}, groupNames(by, r.Group)...)
		for _, c := range t.Columns {
			v := r.value(c)
			switch {
			case c.Kind == Text:
				row = append(row, r.Texts[c.Name])
			case math.IsNaN(v):
				row = append(row, "")
			case c.Kind == Count:
				row = append(row, strconv.FormatInt(int64(v), 10))
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

// EachGroup answers every range: fetch gives a range's groups by key (the
// group's values joined by NUL, "" for one total), and each is called for
// them in key order; a range without any group is answered once, for ""
// with zero(). A range that ends before it starts is an error.
func EachGroup[T any](ranges []Range, fetch func(Range) (map[string]T, error), zero func() T, each func(Range, string, T)) error {
	for _, r := range ranges {
		if !r.From.Before(r.To) {
			return fmt.Errorf("range %q: from %s is not before to %s", r.Name, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
		}
		groups, err := fetch(r)
		if err != nil {
			return fmt.Errorf("range %q: %w", r.Name, err)
		}
		if len(groups) == 0 {
			each(r, "", zero())
			continue
		}
		keys := make([]string, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			each(r, k, groups[k])
		}
	}
	return nil
}

// KeyOf is the EachGroup key of a series with tags: its values of by,
// joined by NUL.
func KeyOf(by []string, tags map[string]string) string {
	parts := make([]string, len(by))
	for i, b := range by {
		parts[i] = tags[b]
	}
	return strings.Join(parts, "\x00")
}

// GroupOf is the group a key of EachGroup names: by's values.
func GroupOf(by []string, key string) map[string]string {
	g := map[string]string{}
	if key != "" {
		for i, v := range strings.Split(key, "\x00") {
			g[by[i]] = v
		}
	}
	return g
}

// WriteJSON writes results (a slice) as an indented JSON array; nil is [].
func WriteJSON[T any](w io.Writer, results []T) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if results == nil {
		results = []T{}
	}
	return enc.Encode(results)
}
