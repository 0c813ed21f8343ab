package tasks

// What Kapacitor runs: the ownership marks, the managed tasks, list.

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	client "github.com/influxdata/kapacitor/client/v1"
)

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
	handlers, err := listHandlers(c, f)
	if err != nil {
		return nil, err
	}
	return append(out, handlers...), nil
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

func status(enabled bool) string { return statusOf(enabled).String() }

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
