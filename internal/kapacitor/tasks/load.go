package tasks

// Loading tasks.toml: the file, its overrides, and each task as Kapacitor
// should run it (Desired).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"
	"github.com/influxdata/toml"
)

// File is tasks.toml.
type File struct {
	Kapacitor struct {
		URL                string `toml:"url"`
		Username           string `toml:"username"`
		Password           string `toml:"password"`
		InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
		CAFile             string `toml:"ca_file"`
		Timeout            string `toml:"timeout"`
	} `toml:"kapacitor"`
	// IDPrefix names the tasks this file manages.
	IDPrefix string `toml:"id_prefix"`
	// Vars apply to every task whose script declares them; a task's own
	// vars win over them.
	Vars map[string]any `toml:"vars"`
	// Owner is stamped into every script this file deploys: prune and
	// update touch only tasks with this file's stamp (or none, from before
	// stamps), so two files sharing a prefix on one Kapacitor never remove
	// or overwrite each other's tasks. Default: tasks.toml's absolute path.
	Owner string     `toml:"owner"`
	Tasks []TaskSpec `toml:"task"`
	// HandlerSpecs are where the topics' alerts go (handlers.go).
	HandlerSpecs []HandlerSpec `toml:"handler"`

	path     string
	handlers []Handler
}

// TaskSpec is one [[task]] of tasks.toml.
type TaskSpec struct {
	Name    string         `toml:"name"`   // the task ID is IDPrefix + Name
	Script  string         `toml:"script"` // relative to tasks.toml
	Enabled *bool          `toml:"enabled"`
	DBRPs   []string       `toml:"dbrps"` // "db.rp", when the script has no dbrp line
	Vars    map[string]any `toml:"vars"`
}

// Override sets a var over tasks.toml at deploy time: for every task whose
// script declares it (Task empty), or for one task. It is for what differs
// per deployment or test, never the logic: addresses, paths, test speed.
type Override struct {
	Task, Var, Value string
}

func (o Override) String() string {
	if o.Task == "" {
		return o.Var + "=" + o.Value
	}
	return o.Task + "." + o.Var + "=" + o.Value
}

// ParseOverride reads "var=value" or "task.var=value".
func ParseOverride(s string) (Override, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return Override{}, fmt.Errorf("invalid override %q: want var=value or task.var=value", s)
	}
	task, v, scoped := strings.Cut(name, ".")
	if !scoped {
		return Override{Var: name, Value: value}, nil
	}
	if task == "" || v == "" {
		return Override{}, fmt.Errorf("invalid override %q: want var=value or task.var=value", s)
	}
	return Override{Task: task, Var: v, Value: value}, nil
}

// Options are what a deployment sets over tasks.toml, and how it reports.
type Options struct {
	URL       string // Kapacitor's, over [kapacitor] url
	Overrides []Override
	// Warn, when set, is told each of CutWindows' warnings on the tasks
	// loaded.
	Warn func(string)
	// PlanTo, when set, gets ApplyFile's plan (PrintPlan) before it is
	// applied; with DryRun it is only planned.
	PlanTo io.Writer
	DryRun bool
}

// Desired is a task as tasks.toml wants it, checked and ready to send.
type Desired struct {
	ID      string
	Script  *Script
	Text    string // the script as deployed: stamped with the owner
	Enabled bool
	DBRPs   []client.DBRP
	Vars    client.Vars
	// Overridden lists the vars set by overrides, "name=value".
	Overridden []string
}

// Load reads and checks tasks.toml and every script it names, with the
// deployment's options over it. Errors name the file, the task and the var.
func Load(path string, opt Options) (*File, []Desired, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	f := &File{path: path}
	if err := toml.Unmarshal([]byte(expandEnv(string(b))), f); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Owner == "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, nil, err
		}
		f.Owner = abs
	}
	if strings.ContainsAny(f.Owner, "\r\n") {
		return nil, nil, fmt.Errorf("%s: invalid %q value %q: one line", path, "owner", f.Owner)
	}
	if opt.URL != "" {
		f.Kapacitor.URL = opt.URL
	}
	if f.Kapacitor.URL == "" {
		return nil, nil, fmt.Errorf("%s: [kapacitor] url is not set", path)
	}
	if f.IDPrefix == "" {
		f.IDPrefix = "mailtick_"
	}
	var raw File // the handlers as written: which ${NAME}s their options use
	if err := toml.Unmarshal(b, &raw); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.loadHandlers(raw.HandlerSpecs); err != nil {
		return nil, nil, err
	}
	var out []Desired
	seen := map[string]bool{}
	used := make([]bool, len(opt.Overrides))
	for i, t := range f.Tasks {
		if t.Name == "" {
			return nil, nil, fmt.Errorf("%s: task %d has no name", path, i+1)
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("%s: task %q is defined twice", path, t.Name)
		}
		seen[t.Name] = true
		d, err := f.desired(t, opt.Overrides, used)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: task %q: %w", path, t.Name, err)
		}
		out = append(out, d)
	}
	for i, o := range opt.Overrides {
		if !used[i] {
			return nil, nil, fmt.Errorf("%s: override %q: no task has that name or declares that var", path, o)
		}
	}
	if opt.Warn != nil {
		for _, w := range CutWindows(out) {
			opt.Warn(w)
		}
	}
	return f, out, nil
}

// braced is ${NAME}: the only form expanded, so that a "$" in a password
// or a regular expression stays as it is.
var braced = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} by the environment's NAME (empty if unset).
func expandEnv(s string) string {
	return braced.ReplaceAllStringFunc(s, func(m string) string { return os.Getenv(m[2 : len(m)-1]) })
}

func (f *File) desired(t TaskSpec, overrides []Override, used []bool) (Desired, error) {
	scriptPath := t.Script
	if !filepath.IsAbs(scriptPath) {
		scriptPath = filepath.Join(filepath.Dir(f.path), scriptPath)
	}
	text, err := os.ReadFile(scriptPath)
	if err != nil {
		return Desired{}, fmt.Errorf("script: %w", err)
	}
	s, err := ParseScript(scriptPath, string(text))
	if err != nil {
		return Desired{}, err
	}
	d := Desired{ID: f.IDPrefix + t.Name, Script: s, Text: stamp(f.Owner, s.Text), Enabled: t.Enabled == nil || *t.Enabled, Vars: client.Vars{}}
	for _, dbrp := range t.DBRPs {
		db, rp, ok := strings.Cut(dbrp, ".")
		if !ok || db == "" || rp == "" {
			return Desired{}, fmt.Errorf("invalid dbrps entry %q: want \"database.retention_policy\"", dbrp)
		}
		d.DBRPs = append(d.DBRPs, client.DBRP{Database: strings.Trim(db, `"`), RetentionPolicy: strings.Trim(rp, `"`)})
	}
	if len(d.DBRPs) == 0 && !s.HasDBRP {
		return Desired{}, errors.New("neither the script (dbrp line) nor tasks.toml (dbrps) names its database")
	}
	// File vars for what the script declares, then the task's own, then
	// the overrides.
	vars := map[string]any{}
	for name, v := range f.Vars {
		if _, ok := s.Vars[name]; ok {
			vars[name] = v
		}
	}
	for name, v := range t.Vars {
		if _, ok := s.Vars[name]; !ok {
			return Desired{}, fmt.Errorf("var %q is not declared in %s (declared: %s)", name, t.Script, strings.Join(slices.Sorted(maps.Keys(s.Vars)), ", "))
		}
		vars[name] = v
	}
	for i, o := range overrides {
		typ, declared := s.Vars[o.Var]
		switch {
		case o.Task != "" && o.Task != t.Name:
			continue
		case !declared && o.Task != "":
			return Desired{}, fmt.Errorf("override %q: var %q is not declared in %s", o, o.Var, t.Script)
		case !declared:
			continue
		}
		v, err := fromText(typ, o.Value)
		if err != nil {
			return Desired{}, fmt.Errorf("override %q (%s): %w", o, typ, err)
		}
		vars[o.Var] = v
		used[i] = true
		d.Overridden = append(d.Overridden, o.Var+"="+o.Value)
	}
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		v, err := toVar(s.Vars[name], vars[name])
		if err != nil {
			return Desired{}, fmt.Errorf("var %q (%s): %w", name, s.Vars[name], err)
		}
		d.Vars[name] = v
	}
	return d, nil
}

// fromText reads an override's value as the type its var declares.
func fromText(typ client.VarType, s string) (any, error) {
	switch typ {
	case client.VarInt:
		return strconv.ParseInt(s, 10, 64)
	case client.VarFloat:
		return strconv.ParseFloat(s, 64)
	case client.VarBool:
		return strconv.ParseBool(s)
	}
	return s, nil
}

// Client connects to the Kapacitor of the file.
func (f *File) Client() (*client.Client, error) {
	cfg := client.Config{URL: f.Kapacitor.URL, InsecureSkipVerify: f.Kapacitor.InsecureSkipVerify, Timeout: 30 * time.Second}
	if f.Kapacitor.Timeout != "" {
		d, err := time.ParseDuration(f.Kapacitor.Timeout)
		if err != nil {
			return nil, fmt.Errorf("%s: invalid [kapacitor] timeout %q", f.path, f.Kapacitor.Timeout)
		}
		cfg.Timeout = d
	}
	if f.Kapacitor.CAFile != "" {
		pem, err := os.ReadFile(f.Kapacitor.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: [kapacitor] ca_file: %w", f.path, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: [kapacitor] ca_file %q holds no PEM certificate", f.path, f.Kapacitor.CAFile)
		}
		cfg.TLSConfig = &tls.Config{RootCAs: pool, InsecureSkipVerify: f.Kapacitor.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	}
	if f.Kapacitor.Username != "" {
		cfg.Credentials = &client.Credentials{Method: client.UserAuthentication, Username: f.Kapacitor.Username, Password: f.Kapacitor.Password}
	}
	return client.New(cfg)
}

// Windows gives the window, every and period a task runs with (its vars,
// else its script's defaults) when it is a batch script with all three as
// durations: a query grouped by time(window).
func Windows(d Desired) (window, every, period time.Duration, ok bool) {
	if d.Script.Type != client.BatchTask {
		return 0, 0, 0, false
	}
	var out [3]time.Duration
	for i, name := range []string{"window", "every", "period"} {
		if d.Script.Vars[name] != client.VarDuration {
			return 0, 0, 0, false
		}
		if v, set := d.Vars[name]; set {
			out[i], ok = v.Value.(time.Duration)
		} else {
			var err error
			out[i], err = parseDuration(d.Script.Defaults[name])
			ok = err == nil
		}
		if !ok {
			return 0, 0, 0, false
		}
	}
	return out[0], out[1], out[2], true
}

// CutWindows says which tasks start their runs inside a window: every or
// period not a whole number of windows. Such a run queries only the tail
// of its first window, and Kapacitor writes that count over the whole one
// written before (an hourly count run every 10m keeps the last 10 minutes
// of each hour).
func CutWindows(want []Desired) []string {
	var out []string
	for _, d := range want {
		window, every, period, ok := Windows(d)
		if ok && (every%window != 0 || period%window != 0) {
			out = append(out, fmt.Sprintf("task %q: every %v and period %v are not whole windows of %v: each run cuts its first window and overwrites it with a part",
				d.ID, every, period, window))
		}
	}
	return out
}
