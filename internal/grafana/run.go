package grafana

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
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
	UID, Name    string
	URL          string
	Flux         bool
	Database     string // InfluxQL: jsonData.dbName
	Bucket       string // Flux: jsonData.defaultBucket
	Organization string // Flux: jsonData.organization
	TimeInterval string // jsonData.timeInterval: the least $__interval ("" for none)
	User         string // InfluxQL: basic auth
	Password     string
	Token        string // Flux: the only credential Grafana sends (1.8: "user:password")
}

// Local is the dashboards and data sources of dir (a checkout's grafana/,
// or the package's), provisioned for central at centralURL and each DC of
// dcURLs (its InfluxDB's URL by name): the shipped files, pointed at local
// servers, as the demo and the bench run them.
func Local(dir, centralURL string, dcURLs map[string]string) (map[string]dashboard.Dashboard, []Source, error) {
	boards, err := Load(filepath.Join(dir, "dashboards"))
	if err != nil {
		return nil, nil, err
	}
	var sources []Source
	seen := map[string]bool{} // central's, declared for every DC
	for _, name := range slices.Sorted(maps.Keys(dcURLs)) {
		env := map[string]string{"MAILTICK_CENTRAL_INFLUXDB_URL": centralURL, "MAILTICK_DC": name, "MAILTICK_DC_INFLUXDB_URL": dcURLs[name]}
		srcs, err := LoadSources(filepath.Join(dir, "provisioning", "datasources", "mailtick.yaml"), func(k string) string { return env[k] })
		if err != nil {
			return nil, nil, err
		}
		for _, s := range srcs {
			if !seen[s.UID] {
				seen[s.UID] = true
				sources = append(sources, s)
			}
		}
	}
	return boards, sources, nil
}

// LoadSources reads a Grafana data-source provisioning file, expanding
// $VAR and ${VAR} in each value with getenv after reading the YAML ($$ is
// a $), as Grafana does.
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
				TimeInterval  string `yaml:"timeInterval"`
			} `yaml:"jsonData"`
			SecureJSONData struct {
				Password string
				Token    string
			} `yaml:"secureJsonData"`
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if file.APIVersion != 1 {
		return nil, fmt.Errorf("%s: apiVersion %d: Grafana reads 1", path, file.APIVersion)
	}
	expand := func(s string) string {
		const dollar = "\x00"
		return strings.ReplaceAll(os.Expand(strings.ReplaceAll(s, "$$", dollar), getenv), dollar, "$")
	}
	var out []Source
	for _, d := range file.Datasources {
		j := d.JSONData
		s := Source{UID: expand(d.UID), Name: expand(d.Name), URL: expand(d.URL), Database: expand(j.DBName),
			Bucket: expand(j.DefaultBucket), Organization: expand(j.Organization), TimeInterval: expand(j.TimeInterval)}
		switch {
		case d.Type != "influxdb":
			return nil, fmt.Errorf("%s: data source %q: type %q, want influxdb", path, s.Name, d.Type)
		case s.UID == "" || s.URL == "":
			return nil, fmt.Errorf("%s: data source %q: no uid or url", path, s.Name)
		case j.Version == "Flux":
			s.Flux, s.Token = true, expand(d.SecureJSONData.Token)
			if s.Bucket == "" || s.Organization == "" {
				return nil, fmt.Errorf("%s: data source %q: Flux needs jsonData.defaultBucket and jsonData.organization", path, s.Name)
			}
		case j.Version == "InfluxQL" || j.Version == "":
			s.User, s.Password = expand(d.User), expand(d.SecureJSONData.Password)
			if s.Database == "" {
				return nil, fmt.Errorf("%s: data source %q: InfluxQL without jsonData.dbName", path, s.Name)
			}
		default:
			return nil, fmt.Errorf("%s: data source %q: jsonData.version %q, want InfluxQL or Flux", path, s.Name, j.Version)
		}
		if s.TimeInterval != "" {
			if _, err := grafanaDuration(s.TimeInterval); err != nil {
				return nil, fmt.Errorf("%s: data source %q: jsonData.timeInterval: %w", path, s.Name, err)
			}
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
	Took             time.Duration // the panel's queries and expressions, one after another
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
				if re.MatchString(s.Name) { // by name; the value is the uid
					values = append(values, s.UID)
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
			began := time.Now()
			res := r.panel(p, c, multi)
			res.Took = time.Since(began)
			out = append(out, res)
		}
	}
	return out, nil
}

// grafanaRegex is a variable's regex as Grafana reads it: /re/flags
// (i, m, s kept; g, y mean nothing here), or bare, which must match whole.
func grafanaRegex(s string) (*regexp.Regexp, error) {
	if end := strings.LastIndex(s, "/"); len(s) >= 2 && s[0] == '/' && end > 0 {
		flags := ""
		for _, f := range s[end+1:] {
			if strings.ContainsRune("ims", f) {
				flags += string(f)
			}
		}
		if flags != "" {
			flags = "(?" + flags + ")"
		}
		return regexp.Compile(flags + s[1:end])
	}
	return regexp.Compile("^" + s + "$")
}

func (r Runner) source(uid string, single map[string]string) (Source, error) {
	uid = expandVars(uid, single, nil, false)
	for _, s := range r.Sources { // a variable's value is a uid; a name works too
		if s.UID == uid || s.Name == uid {
			return s, nil
		}
	}
	return Source{}, fmt.Errorf("no data source %q in the provisioning", uid)
}

func (r Runner) panel(p Panel, single map[string]string, multi map[string][]string) Result {
	res := Result{Dashboard: p.Dashboard, Panel: p.Title, Vars: single, Frames: map[string][]Frame{}, Queries: map[string]string{}}
	minInterval := expandVars(p.Interval, single, multi, false)
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
		if minInterval == "" {
			minInterval = src.TimeInterval
		}
		interval, err := r.interval(minInterval, p.MaxDataPoints)
		if err != nil {
			res.Err = fmt.Errorf("panel interval %q: %w", minInterval, err)
			return res
		}
		text := expandVars(q.Query, single, multi, true)
		var frames []Frame
		if src.Flux {
			text = r.fluxMacros(text, src, interval)
			res.Queries[q.RefId] = text
			frames, err = r.flux(src, text)
		} else {
			text = r.influxQLMacros(text, interval)
			res.Queries[q.RefId] = text
			frames, err = r.influxQL(src, text, q.ResultFormat == "table")
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

// interval is $__interval as Grafana computes it (rangeutil's
// calculateInterval): the range over the panel's maxDataPoints (its width
// in pixels when unset: 1,000 here), rounded to the nearest of Grafana's
// steps (roundInterval), and at least the minimum interval (the panel's,
// or its data source's timeInterval).
func (r Runner) interval(min string, maxDataPoints float64) (time.Duration, error) {
	if maxDataPoints <= 0 {
		maxDataPoints = MaxDataPoints
	}
	iv := roundInterval(time.Duration(float64(r.To.Sub(r.From)) / maxDataPoints))
	if min != "" {
		m, err := grafanaDuration(min)
		if err != nil {
			return 0, err
		}
		iv = max(iv, m)
	}
	return iv, nil
}

// roundInterval is Grafana's: each step is taken below the midpoint to
// the next.
func roundInterval(d time.Duration) time.Duration {
	ms := time.Millisecond
	for _, s := range []struct{ below, step time.Duration }{
		{15 * ms, 10 * ms}, {35 * ms, 20 * ms}, {75 * ms, 50 * ms}, {150 * ms, 100 * ms}, {350 * ms, 200 * ms},
		{750 * ms, 500 * ms}, {1500 * ms, time.Second}, {3500 * ms, 2 * time.Second}, {7500 * ms, 5 * time.Second},
		{12500 * ms, 10 * time.Second}, {17500 * ms, 15 * time.Second}, {25 * time.Second, 20 * time.Second},
		{45 * time.Second, 30 * time.Second}, {90 * time.Second, time.Minute}, {3 * time.Minute, 2 * time.Minute},
		{450 * time.Second, 5 * time.Minute}, {750 * time.Second, 10 * time.Minute}, {1050 * time.Second, 15 * time.Minute},
		{25 * time.Minute, 20 * time.Minute}, {45 * time.Minute, 30 * time.Minute}, {90 * time.Minute, time.Hour},
		{150 * time.Minute, 2 * time.Hour}, {270 * time.Minute, 3 * time.Hour}, {9 * time.Hour, 6 * time.Hour},
		{24 * time.Hour, 12 * time.Hour}, {7 * 24 * time.Hour, 24 * time.Hour}, {21 * 24 * time.Hour, 7 * 24 * time.Hour},
		{42 * 24 * time.Hour, 30 * 24 * time.Hour},
	} {
		if d < s.below {
			return s.step
		}
	}
	return 365 * 24 * time.Hour
}

var grafanaInterval = regexp.MustCompile(`^(\d+)(ms|[Mwdhmsy])`)

// grafanaDuration reads an interval as Grafana does (rangeutil's
// describeInterval): a number and ms, s, m, h, d, w, M (30 days) or y,
// the rest ignored (so "1mo" is one minute: Grafana reads it so).
func grafanaDuration(s string) (time.Duration, error) {
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "M": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour}
	m := grafanaInterval.FindStringSubmatch(s)
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
		"$__interval", formatInterval(interval),
	).Replace(q)
}

// formatInterval writes $__interval as Grafana's backend does
// (gtime.FormatInterval): in its largest whole unit of d, h, m, s, ms.
func formatInterval(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d >= u.d {
			return fmt.Sprintf("%d%s", d/u.d, u.unit)
		}
	}
	return "1ms"
}

// fluxWord is what Grafana's backend takes for a Flux macro: any
// word.word, replaced when the second word is one of its names (so a
// record's r.bucket is replaced too: write r["bucket"]).
var fluxWord = regexp.MustCompile(`([a-zA-Z]+)\.([a-zA-Z]+)`)

// fluxMacros expands Grafana's Flux macros, as text.
func (r Runner) fluxMacros(q string, src Source, interval time.Duration) string {
	return fluxWord.ReplaceAllStringFunc(q, func(m string) string {
		switch fluxWord.FindStringSubmatch(m)[2] {
		case "timeRangeStart":
			return r.From.UTC().Format(time.RFC3339Nano)
		case "timeRangeStop":
			return r.To.UTC().Format(time.RFC3339Nano)
		case "windowPeriod":
			return interval.String()
		case "bucket", "defaultBucket":
			return strconv.Quote(src.Bucket)
		case "organization":
			return strconv.Quote(src.Organization)
		}
		return m
	})
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
				return escapeRegex(v)
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
				q[i] = escapeRegex(v)
			}
			if len(q) == 1 {
				return q[0]
			}
			return "(" + strings.Join(q, "|") + ")"
		}
		return m
	})
}

// escapeRegex escapes a value for a /regex/ literal, as Grafana's regex
// format does: the metacharacters and the slash.
func escapeRegex(v string) string { return strings.ReplaceAll(regexp.QuoteMeta(v), "/", `\/`) }

func (r Runner) querier(src Source) influxq.Querier {
	if src.Flux { // Grafana's Flux client sends the token, always
		return influxq.Querier{URL: src.URL, Token: src.Token, Timeout: r.Timeout}
	}
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

// influxQL runs q and returns its frames: a frame per value column and
// series (its tags the labels); in a table, a row's string columns are
// labels too.
func (r Runner) influxQL(src Source, q string, table bool) ([]Frame, error) {
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
					if table {
						labels[col] = v
					}
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
// dashboards use, $A / $B * k, joining series as Grafana's union does:
// a lone series on each side pairs whatever its labels, otherwise series
// whose labels are equal or one's hold the other's; per time both have.
// A division by 0 gives what Grafana keeps: ±Inf or NaN.
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
	var out []Frame
	pair := func(fa, fb Frame) {
		labels := fa.Labels
		if len(fb.Labels) > len(labels) {
			labels = fb.Labels
		}
		res := Frame{Name: expression, Labels: labels, Points: map[int64]float64{}}
		for t, va := range fa.Points {
			if vb, ok := fb.Points[t]; ok {
				res.Points[t] = va / vb * k
			}
		}
		out = append(out, res)
	}
	if len(a) == 1 && len(b) == 1 {
		pair(a[0], b[0])
		return out, nil
	}
	for _, fa := range a {
		for _, fb := range b {
			if holds(fa.Labels, fb.Labels) || holds(fb.Labels, fa.Labels) {
				pair(fa, fb)
			}
		}
	}
	return out, nil
}

// holds tells whether every label of sub is in labels, with its value.
func holds(labels, sub map[string]string) bool {
	for k, v := range sub {
		if labels[k] != v {
			return false
		}
	}
	return true
}
