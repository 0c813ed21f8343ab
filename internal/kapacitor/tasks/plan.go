package tasks

// Plan and apply: what would change in Kapacitor, and changing it.

import (
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"
)

// Action is one change a plan makes.
type Action struct {
	Kind    string // create, update, enable, disable, delete, unchanged
	ID      string
	Details []string // script diff, var changes
	desired *Desired
	enabled bool     // update: whether the task runs now
	handler *Handler // an alert handler's action, not a task's
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
	handlers, err := planHandlers(c, f, prune)
	if err != nil {
		return nil, err
	}
	return append(plan, handlers...), nil
}

// Apply carries a plan out.
func Apply(c *client.Client, plan []Action) error {
	for _, a := range plan {
		if a.handler != nil {
			if err := applyHandler(c, a); err != nil {
				return fmt.Errorf("%s %s: %w", a.Kind, a.ID, err)
			}
			continue
		}
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

func statusOf(enabled bool) client.TaskStatus {
	if enabled {
		return client.Enabled
	}
	return client.Disabled
}

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
		if a.Kind != "unchanged" && a.Kind != "skipped" {
			changes++
		}
	}
	fmt.Fprintf(w, "%d change(s)\n", changes)
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
