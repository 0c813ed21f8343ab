package tasks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
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

	path string
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

// Action is one change a plan makes.
type Action struct {
	Kind    string // create, update, enable, disable, delete, unchanged
	ID      string
	Details []string // script diff, var changes
	desired *Desired
	enabled bool // update: whether the task runs now
}

// Plan compares tasks.toml with the managed tasks in Kapacitor. Managed
// tasks missing from the file are planned for deletion only with prune.
func Plan(c *client.Client, f *File, want []Desired, prune bool) ([]Action, error) {
	have, err := managed(c, f.IDPrefix)
	if err != nil {
		return nil, err
	}
	var plan []Action
	for i := range want {
		d := &want[i]
		t, ok := have[d.ID]
		delete(have, d.ID)
		if o := ownerOf(t.TICKscript); ok && o != "" && o != f.Owner {
			return nil, fmt.Errorf("task %s belongs to %q, not to this file (owner %q): change id_prefix, or set owner = %q to take it over", d.ID, o, f.Owner, o)
		}
		if !ok {
			a := Action{Kind: "create", ID: d.ID, desired: d,
				Details: []string{fmt.Sprintf("version %d, %s, %s", d.Script.Version, d.Script.Type, status(d.Enabled))}}
			for _, name := range slices.Sorted(maps.Keys(d.Vars)) {
				a.Details = append(a.Details, fmt.Sprintf("var %s = %v", name, show(d.Vars[name])))
			}
			plan = append(plan, withOverrides(a, d))
			continue
		}
		var details []string
		if !sameScript(t.TICKscript, d.Text) {
			details = append(details, fmt.Sprintf("script: version %d -> %d", scriptVersion(t.TICKscript), d.Script.Version))
			details = append(details, Diff(normalize(t.TICKscript), normalize(d.Text))...)
		}
		details = append(details, varChanges(t.Vars, d.Vars)...)
		if len(d.DBRPs) > 0 && !sameDBRPs(t.DBRPs, d.DBRPs) {
			details = append(details, fmt.Sprintf("dbrps: %v -> %v", t.DBRPs, d.DBRPs))
		}
		switch {
		case len(details) > 0:
			if (t.Status == client.Enabled) != d.Enabled {
				details = append(details, status(d.Enabled))
			}
			plan = append(plan, withOverrides(Action{Kind: "update", ID: d.ID, Details: details, desired: d, enabled: t.Status == client.Enabled}, d))
		case (t.Status == client.Enabled) != d.Enabled:
			plan = append(plan, withOverrides(Action{Kind: map[bool]string{true: "enable", false: "disable"}[d.Enabled], ID: d.ID, desired: d}, d))
		default:
			plan = append(plan, withOverrides(Action{Kind: "unchanged", ID: d.ID}, d))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(have)) {
		if prune && ownerOf(have[id].TICKscript) == f.Owner {
			plan = append(plan, Action{Kind: "delete", ID: id, Details: []string{"no longer in tasks.toml"}})
		}
	}
	return plan, nil
}

// Apply carries a plan out.
func Apply(c *client.Client, plan []Action) error {
	for _, a := range plan {
		link := c.TaskLink(a.ID)
		d := a.desired
		var err error
		switch a.Kind {
		case "create":
			_, err = c.CreateTask(client.CreateTaskOptions{ID: a.ID, Type: d.Script.Type, DBRPs: d.DBRPs,
				TICKscript: d.Text, Status: statusOf(d.Enabled), Vars: d.Vars})
		case "update":
			err = update(c, link, a)
		case "enable", "disable":
			_, err = c.UpdateTask(link, client.UpdateTaskOptions{Status: statusOf(d.Enabled)})
		case "delete":
			err = c.DeleteTask(link)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", a.Kind, a.ID, err)
		}
	}
	return nil
}

// withOverrides notes in a plan which vars the deployment sets over
// tasks.toml.
func withOverrides(a Action, d *Desired) Action {
	if len(d.Overridden) > 0 {
		a.Details = append(a.Details, "overrides over tasks.toml: "+strings.Join(d.Overridden, ", "))
	}
	return a
}

// update applies a new script, vars and dbrps. Kapacitor applies a new
// script only to a disabled task: it is disabled first, and if the update
// then fails, a task that ran is enabled again with what it had, so a live
// alert never stays off because of a bad change.
func update(c *client.Client, link client.Link, a Action) error {
	d := a.desired
	if _, err := c.UpdateTask(link, client.UpdateTaskOptions{Status: client.Disabled}); err != nil {
		return err
	}
	_, err := c.UpdateTask(link, client.UpdateTaskOptions{Type: d.Script.Type, DBRPs: d.DBRPs, TICKscript: d.Text, Vars: d.Vars})
	if err != nil {
		if a.enabled {
			if _, rerr := c.UpdateTask(link, client.UpdateTaskOptions{Status: client.Enabled}); rerr != nil {
				return fmt.Errorf("%w; enabling the old task again failed too: %v", err, rerr)
			}
			return fmt.Errorf("%w (the task runs on with its old script)", err)
		}
		return err
	}
	if d.Enabled {
		_, err = c.UpdateTask(link, client.UpdateTaskOptions{Status: client.Enabled})
	}
	return err
}

// ownerLine starts the stamp line of a deployed script.
const ownerLine = "// mailtick-owner: "

// stamp puts the owner's line above a script.
func stamp(owner, text string) string { return ownerLine + owner + "\n" + text }

// ownerOf reads the stamp of a deployed script, "" if it has none.
func ownerOf(text string) string {
	first, _, _ := strings.Cut(text, "\n")
	if o, ok := strings.CutPrefix(first, ownerLine); ok {
		return strings.TrimSpace(o)
	}
	return ""
}

// Deployed is what list shows for a managed task.
type Deployed struct {
	ID, Status, Error, Drift string
	Version                  int
	Executing                bool
}

// List shows every managed task with its drift from tasks.toml.
func List(c *client.Client, f *File, want []Desired) ([]Deployed, error) {
	have, err := managed(c, f.IDPrefix)
	if err != nil {
		return nil, err
	}
	byID := map[string]*Desired{}
	for i := range want {
		byID[want[i].ID] = &want[i]
	}
	var out []Deployed
	for _, id := range slices.Sorted(maps.Keys(have)) {
		t := have[id]
		dep := Deployed{ID: id, Status: t.Status.String(), Error: t.Error, Version: scriptVersion(t.TICKscript), Executing: t.Executing}
		switch d, ok := byID[id]; {
		case !ok:
			dep.Drift = "not in tasks.toml (prune removes it)"
		case !sameScript(t.TICKscript, d.Text):
			dep.Drift = fmt.Sprintf("script differs from %s (edited by hand, or not applied)", d.Script.Path)
		case len(varChanges(t.Vars, d.Vars)) > 0:
			dep.Drift = "vars differ from tasks.toml"
		case (t.Status == client.Enabled) != d.Enabled:
			dep.Drift = "status differs from tasks.toml"
		default:
			dep.Drift = "in sync"
		}
		out = append(out, dep)
	}
	for _, d := range want {
		if _, ok := have[d.ID]; !ok {
			out = append(out, Deployed{ID: d.ID, Status: "absent", Drift: "in tasks.toml, not deployed (apply creates it)"})
		}
	}
	return out, nil
}

// managed lists every task whose ID has the prefix, page by page
// (Kapacitor answers at most Limit tasks at a time).
func managed(c *client.Client, prefix string) (map[string]client.Task, error) {
	out := make(map[string]client.Task)
	for offset := 0; ; offset += listPage {
		tasks, err := c.ListTasks(&client.ListTasksOptions{Pattern: prefix + "*", Offset: offset, Limit: listPage,
			Fields: []string{"type", "status", "executing", "error", "script", "vars", "dbrps"}})
		if err != nil {
			return nil, fmt.Errorf("listing Kapacitor tasks: %w", err)
		}
		for _, t := range tasks {
			if strings.HasPrefix(t.ID, prefix) {
				out[t.ID] = t
			}
		}
		if len(tasks) < listPage {
			return out, nil
		}
	}
}

// listPage is how many tasks one list request asks for.
const listPage = 100

// sameScript compares scripts as Kapacitor keeps them: it reformats what
// it stores (blank lines between vars, say), so blank lines and trailing
// spaces do not count.
func sameScript(deployed, repo string) bool {
	return normalize(deployed) == normalize(repo)
}

func normalize(text string) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimRight(l, " \t\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func scriptVersion(text string) int {
	s, err := ParseScript("", text)
	if err != nil {
		return 0
	}
	return s.Version
}

func statusOf(enabled bool) client.TaskStatus {
	if enabled {
		return client.Enabled
	}
	return client.Disabled
}

func status(enabled bool) string { return statusOf(enabled).String() }

func show(v client.Var) string {
	switch x := v.Value.(type) {
	case time.Duration:
		return x.String()
	case string:
		return fmt.Sprintf("%q", x)
	case []client.Var:
		var items []string
		for _, it := range x {
			items = append(items, show(it))
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	return fmt.Sprint(v.Value)
}

// varChanges lists the vars whose deployed value differs from the wanted
// one (a var no longer set in tasks.toml goes back to the script default).
func varChanges(have, want client.Vars) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		h, ok := have[name]
		if !ok {
			out = append(out, fmt.Sprintf("var %s: (script default) -> %s", name, show(want[name])))
		} else if !sameVar(h, want[name]) {
			out = append(out, fmt.Sprintf("var %s: %s -> %s", name, show(h), show(want[name])))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[name]; !ok {
			out = append(out, fmt.Sprintf("var %s: %s -> (script default)", name, show(have[name])))
		}
	}
	return out
}

func sameVar(a, b client.Var) bool {
	return a.Type == b.Type && reflect.DeepEqual(a.Value, b.Value)
}

func sameDBRPs(a, b []client.DBRP) bool {
	return reflect.DeepEqual(a, b)
}

// PrintPlan writes a plan for people.
func PrintPlan(w io.Writer, plan []Action) {
	changes := 0
	for _, a := range plan {
		fmt.Fprintf(w, "%-9s %s\n", a.Kind, a.ID)
		for _, d := range a.Details {
			fmt.Fprintf(w, "          %s\n", d)
		}
		if a.Kind != "unchanged" {
			changes++
		}
	}
	fmt.Fprintf(w, "%d change(s)\n", changes)
}

// PrintList writes list's table.
func PrintList(w io.Writer, list []Deployed) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tVERSION\tSTATUS\tEXECUTING\tERROR\tDRIFT")
	for _, d := range list {
		errText := d.Error
		if errText == "" {
			errText = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%s\t%s\n", d.ID, d.Version, d.Status, d.Executing, errText, d.Drift)
	}
	tw.Flush()
}

// ApplyFile loads a tasks file, plans and applies it (prune: removing the
// managed tasks no longer in it): what `mailtick tasks plan|apply|prune`
// does, and the benchmarks and tests that deploy tasks.
func ApplyFile(path string, prune bool, opt Options) ([]Action, *client.Client, error) {
	f, want, err := Load(path, opt)
	if err != nil {
		return nil, nil, err
	}
	c, err := f.Client()
	if err != nil {
		return nil, nil, err
	}
	plan, err := Plan(c, f, want, prune)
	if err != nil {
		return nil, nil, err
	}
	if opt.PlanTo != nil {
		PrintPlan(opt.PlanTo, plan)
	}
	if opt.DryRun {
		return plan, c, nil
	}
	return plan, c, Apply(c, plan)
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
