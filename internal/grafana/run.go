package grafana

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"go.yaml.in/yaml/v3"

	"github.com/mailtick/mailtick/internal/influxq"
)

// Source is a data source as grafana/provisioning declares it.
type Source struct {
	UID, Name string
	URL       string
	Flux      bool
	Database  string // InfluxQL: jsonData.dbName
	Bucket    string // Flux: jsonData.defaultBucket
	User      string
	Password  string
}

// LoadSources reads a Grafana data-source provisioning file, expanding
// $VAR and ${VAR} with getenv as Grafana does.
func LoadSources(path string, getenv func(string) string) ([]Source, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL, Access, User string
			IsDefault                          bool `yaml:"isDefault"`
			Editable                           bool
			JSONData                           struct {
				Version       string
				DBName        string `yaml:"dbName"`
				HTTPMode      string `yaml:"httpMode"`
				Organization  string
				DefaultBucket string `yaml:"defaultBucket"`
			} `yaml:"jsonData"`
			SecureJSONData struct {
				Password string
				Token    string
			} `yaml:"secureJsonData"`
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(os.Expand(string(raw), getenv)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if file.APIVersion != 1 {
		return nil, fmt.Errorf("%s: apiVersion %d: Grafana reads 1", path, file.APIVersion)
	}
	var out []Source
	for _, d := range file.Datasources {
		s := Source{UID: d.UID, Name: d.Name, URL: d.URL, Database: d.JSONData.DBName, Bucket: d.JSONData.DefaultBucket,
			User: d.User, Password: d.SecureJSONData.Password}
		switch {
		case d.Type != "influxdb":
			return nil, fmt.Errorf("%s: data source %q: type %q, want influxdb", path, d.Name, d.Type)
		case d.UID == "" || d.URL == "":
			return nil, fmt.Errorf("%s: data source %q: no uid or url", path, d.Name)
		case d.JSONData.Version == "Flux":
			s.Flux = true
			if s.Bucket == "" {
				return nil, fmt.Errorf("%s: data source %q: Flux without jsonData.defaultBucket", path, d.Name)
			}
		case d.JSONData.Version == "InfluxQL" || d.JSONData.Version == "":
			if s.Database == "" {
				return nil, fmt.Errorf("%s: data source %q: InfluxQL without jsonData.dbName", path, d.Name)
			}
		default:
			return nil, fmt.Errorf("%s: data source %q: jsonData.version %q, want InfluxQL or Flux", path, d.Name, d.JSONData.Version)
		}
		out = append(out, s)
	}
	return out, nil
}

// Frame is one series a target returns: a value column (InfluxQL) or
// field (Flux) with its labels (tags, and a row's string columns), by time
// in ns (0 for a result without time).
type Frame struct {
	Name   string
	Labels map[string]string
	Points map[int64]float64
}

// LabelKey is the frame's labels as one string: k=v, sorted, each
// followed by a comma.
func (f Frame) LabelKey() string {
	keys := slices.Sorted(maps.Keys(f.Labels))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s,", k, f.Labels[k])
	}
	return b.String()
}

// Result is what one panel's targets returned for one choice of the
// dashboard's single-valued variables (the rollup level, the DC's data
// source); the multi-valued ones (DC, direction) are All.
type Result struct {
	Dashboard, Panel string
	Vars             map[string]string
	Frames           map[string][]Frame // by refId, the targets shown and the expressions
	Queries          map[string]string  // by refId, as run
	Err              error
}

// Empty lists the refIds shown that returned no value.
func (r Result) Empty() []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(r.Frames)) {
		n := 0
		for _, f := range r.Frames[id] {
			for _, v := range f.Points {
				if !math.IsNaN(v) {
					n++
				}
			}
		}
		if n == 0 {
			out = append(out, id)
		}
	}
	return out
}

// Runner runs dashboards' panels as Grafana would, against Sources, over
// [From, To].
type Runner struct {
	Sources  []Source
	From, To time.Time
	Timeout  time.Duration
	// Only chooses values of multi-valued variables, as a user would;
	// each must be one the variable offers. Absent: All.
	Only map[string][]string
}

// Run runs every panel of d, once per value of each single-valued
// variable.
func (r Runner) Run(d dashboard.Dashboard) ([]Result, error) {
	panels, err := Panels(d)
	if err != nil {
		return nil, err
	}
	vars, err := Variables(d)
	if err != nil {
		return nil, err
	}
	multi := map[string][]string{}
	choices := []map[string]string{{}}
	for _, v := range vars {
		var values []string
		switch v.Kind {
		case "query":
			src, err := r.source(v.Datasource, nil)
			if err != nil {
				return nil, fmt.Errorf("variable %s: %w", v.Name, err)
			}
			values, err = r.values(src, v.Query)
			if err != nil {
				return nil, fmt.Errorf("variable %s: %w", v.Name, err)
			}
			if len(values) == 0 {
				return nil, fmt.Errorf("variable %s: %s gives no value", v.Name, v.Query)
			}
			if only, ok := r.Only[v.Name]; ok {
				for _, o := range only {
					if !slices.Contains(values, o) {
						return nil, fmt.Errorf("variable %s: %q is not among its values %v", v.Name, o, values)
					}
				}
				values = only
			}
			multi[v.Name] = values
			continue
		case "custom":
			for _, s := range strings.Split(v.Query, ",") {
				values = append(values, strings.TrimSpace(s))
			}
		case "datasource":
			re, err := grafanaRegex(v.Regex)
			if err != nil {
				return nil, fmt.Errorf("variable %s: %w", v.Name, err)
			}
			for _, s := range r.Sources {
				if re.MatchString(s.Name) {
					values = append(values, s.Name)
				}
			}
			if len(values) == 0 {
				return nil, fmt.Errorf("variable %s: no data source's name matches %s", v.Name, v.Regex)
			}
		}
		var next []map[string]string
		for _, c := range choices {
			for _, val := range values {
				m := map[string]string{v.Name: val}
				for k, x := range c {
					m[k] = x
				}
				next = append(next, m)
			}
		}
		choices = next
	}
	var out []Result
	for _, c := range choices {
		for _, p := range panels {
			out = append(out, r.panel(p, c, multi))
		}
	}
	return out, nil
}

// grafanaRegex is a variable's regex as Grafana writes it: /re/ (flags
// after the last slash), or bare.
func grafanaRegex(s string) (*regexp.Regexp, error) {
	if len(s) >= 2 && s[0] == '/' {
		if end := strings.LastIndex(s, "/"); end > 0 {
			flags := s[end+1:]
			s = s[1:end]
			if strings.Contains(flags, "i") {
				s = "(?i)" + s
			}
		}
	}
	return regexp.Compile(s)
}

func (r Runner) source(uid string, single map[string]string) (Source, error) {
	uid = expandVars(uid, single, nil, false)
	for _, s := range r.Sources {
		if s.UID == uid || s.Name == uid {
			return s, nil
		}
	}
	return Source{}, fmt.Errorf("no data source %q in the provisioning", uid)
}

func (r Runner) panel(p Panel, single map[string]string, multi map[string][]string) Result {
	res := Result{Dashboard: p.Dashboard, Panel: p.Title, Vars: single, Frames: map[string][]Frame{}, Queries: map[string]string{}}
	interval, err := r.interval(expandVars(p.Interval, single, multi, false))
	if err != nil {
		res.Err = fmt.Errorf("panel interval %q: %w", p.Interval, err)
		return res
	}
	all := map[string][]Frame{}
	for _, q := range p.Queries {
		uid := p.Datasource
		if q.Datasource != nil && q.Datasource.Uid != nil {
			uid = *q.Datasource.Uid
		}
		src, err := r.source(uid, single)
		if err != nil {
			res.Err = fmt.Errorf("%s: %w", q.RefId, err)
			return res
		}
		text := expandVars(q.Query, single, multi, true)
		var frames []Frame
		if src.Flux {
			text = r.fluxMacros(text, src)
			res.Queries[q.RefId] = text
			frames, err = r.flux(src, text)
		} else {
			text = r.influxQLMacros(text, interval)
			res.Queries[q.RefId] = text
			frames, err = r.influxQL(src, text)
		}
		if err != nil {
			res.Err = fmt.Errorf("%s: %w", q.RefId, err)
			return res
		}
		all[q.RefId] = frames
		if !q.Hide {
			res.Frames[q.RefId] = frames
		}
	}
	for _, m := range p.Maths {
		frames, err := math3(m.Expression, all)
		if err != nil {
			res.Err = fmt.Errorf("%s: %w", deref(m.RefId), err)
			return res
		}
		all[deref(m.RefId)] = frames
		res.Frames[deref(m.RefId)] = frames
	}
	return res
}

// interval is $__interval: the range over 1,000 points, rounded up to
// one of Grafana's steps, and at least the panel's minimum.
func (r Runner) interval(min string) (time.Duration, error) {
	steps := []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
		10 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
	want := r.To.Sub(r.From) / 1000
	iv := steps[len(steps)-1]
	for _, s := range steps {
		if s >= want {
			iv = s
			break
		}
	}
	if min != "" {
		m, err := grafanaDuration(min)
		if err != nil {
			return 0, err
		}
		iv = max(iv, m)
	}
	return iv, nil
}

// grafanaDuration reads an interval as Grafana writes it (1m, 1h, 1d, 1w;
// 1mo as 31 days: an interval at least a month).
func grafanaDuration(s string) (time.Duration, error) {
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "mo": 31 * 24 * time.Hour, "y": 366 * 24 * time.Hour}
	m := regexp.MustCompile(`^(\d+)(ms|s|m|h|d|w|mo|y)$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid interval %q", s)
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n) * units[m[2]], nil
}

// influxQLMacros expands Grafana's InfluxQL macros.
func (r Runner) influxQLMacros(q string, interval time.Duration) string {
	return strings.NewReplacer(
		"$timeFilter", fmt.Sprintf("time >= %dms and time <= %dms", r.From.UnixMilli(), r.To.UnixMilli()),
		"$__interval_ms", strconv.FormatInt(interval.Milliseconds(), 10),
		"$__interval", influxDuration(interval),
	).Replace(q)
}

func influxDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.unit)
		}
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// fluxMacros expands what Grafana's Flux macros are: the range, the
// interval and the data source's bucket and organization, as text.
func (r Runner) fluxMacros(q string, src Source) string {
	return strings.NewReplacer(
		"v.timeRangeStart", r.From.UTC().Format(time.RFC3339Nano),
		"v.timeRangeStop", r.To.UTC().Format(time.RFC3339Nano),
		"v.defaultBucket", strconv.Quote(src.Bucket),
	).Replace(q)
}

var varRef = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)`)

// expandVars replaces the dashboard's variables in s: single ones by
// their value, multi-valued ones (All: every value) in Grafana's regex
// format (values escaped, (a|b) for more than one), the only format the
// dashboards use them in. Grafana's own names ($__interval, $timeFilter)
// and unknown names stay.
func expandVars(s string, single map[string]string, multi map[string][]string, strict bool) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		g := varRef.FindStringSubmatch(m)
		name, format := g[1]+g[3]+g[4], g[2]
		if v, ok := single[name]; ok {
			if format == "regex" {
				return regexp.QuoteMeta(v)
			}
			return v
		}
		if vs, ok := multi[name]; ok {
			if format != "regex" {
				if strict {
					return "<" + name + " without :regex>"
				}
				return m
			}
			q := make([]string, len(vs))
			for i, v := range vs {
				q[i] = regexp.QuoteMeta(v)
			}
			if len(q) == 1 {
				return q[0]
			}
			return "(" + strings.Join(q, "|") + ")"
		}
		return m
	})
}

func (r Runner) querier(src Source) influxq.Querier {
	return influxq.Querier{URL: src.URL, Username: src.User, Password: src.Password, Timeout: r.Timeout}
}

// values are what a query variable offers: the column "value" of q's
// rows (SHOW TAG VALUES), sorted, without repeats.
func (r Runner) values(src Source, q string) ([]string, error) {
	series, err := r.querier(src).Query(src.Database, q)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range series {
		for _, row := range s.Values {
			for i, col := range s.Columns {
				if v, ok := row[i].(string); ok && col == "value" {
					seen[v] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// influxQL runs q and returns its frames.
func (r Runner) influxQL(src Source, q string) ([]Frame, error) {
	series, err := r.querier(src).Query(src.Database, q)
	if err != nil {
		return nil, err
	}
	frames := map[string]*Frame{}
	var order []string
	for _, s := range series {
		for _, row := range s.Values {
			labels := map[string]string{}
			for k, v := range s.Tags {
				labels[k] = v
			}
			var t int64
			values := map[string]float64{}
			for i, col := range s.Columns {
				switch v := row[i].(type) {
				case json.Number:
					if col == "time" {
						t, _ = v.Int64()
						continue
					}
					f, _ := v.Float64()
					values[col] = f
				case string:
					labels[col] = v
				case nil:
					values[col] = math.NaN()
				}
			}
			for col, v := range values {
				f := Frame{Name: col, Labels: labels}
				k := col + "|" + f.LabelKey()
				if frames[k] == nil {
					f.Points = map[int64]float64{}
					frames[k] = &f
					order = append(order, k)
				}
				frames[k].Points[t] = v
			}
		}
	}
	out := make([]Frame, len(order))
	for i, k := range order {
		out[i] = *frames[k]
	}
	return out, nil
}

// flux runs q and returns its frames: a frame per numeric column and
// row's string columns.
func (r Runner) flux(src Source, q string) ([]Frame, error) {
	tables, err := r.querier(src).Flux(q)
	if err != nil {
		return nil, err
	}
	var out []Frame
	for _, tb := range tables {
		for _, row := range tb.Rows {
			labels := map[string]string{}
			var t int64
			for col, v := range row {
				switch {
				case col == "" || col == "result" || col == "table":
				case col == "_time":
					ts, err := time.Parse(time.RFC3339Nano, v)
					if err == nil {
						t = ts.UnixNano()
					}
				case tb.Types[col] == "string":
					labels[col] = v
				}
			}
			for col, v := range row {
				switch tb.Types[col] {
				case "double", "long", "unsignedLong":
					if col == "table" {
						continue
					}
					f, err := strconv.ParseFloat(v, 64)
					if err != nil {
						f = math.NaN()
					}
					out = append(out, Frame{Name: col, Labels: labels, Points: map[int64]float64{t: f}})
				}
			}
		}
	}
	return out, nil
}

var mathForm = regexp.MustCompile(`^\$(\w+) / \$(\w+) \* ([0-9.]+)$`)

// math3 evaluates a Grafana math expression of the one form the
// dashboards use, $A / $B * k: per pair of frames with the same labels,
// per time both have (Grafana's series join); division by 0 gives no
// point.
func math3(expression string, frames map[string][]Frame) ([]Frame, error) {
	m := mathForm.FindStringSubmatch(expression)
	if m == nil {
		return nil, fmt.Errorf("expression %q: the check evaluates only $A / $B * k", expression)
	}
	a, b := frames[m[1]], frames[m[2]]
	if a == nil || b == nil {
		return nil, fmt.Errorf("expression %q: no query %s or %s", expression, m[1], m[2])
	}
	k, _ := strconv.ParseFloat(m[3], 64)
	byKey := map[string]Frame{}
	for _, f := range b {
		byKey[f.LabelKey()] = f
	}
	var out []Frame
	for _, fa := range a {
		fb, ok := byKey[fa.LabelKey()]
		if !ok {
			continue
		}
		res := Frame{Name: expression, Labels: fa.Labels, Points: map[int64]float64{}}
		for t, va := range fa.Points {
			if vb, ok := fb.Points[t]; ok && vb != 0 {
				res.Points[t] = va / vb * k
			}
		}
		out = append(out, res)
	}
	return out, nil
}
