package grafana

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/expr"
)

// Load reads every dashboard of dir (*.json) the way the schema says:
// Grafana's dashboard kind as the Foundation SDK generates it, strictly
// (an unknown field, a wrong type or a missing required one is an error),
// each panel's options and field config by its panel kind, each target by
// its data source's type, then the SDK's constraints (Validate).
func Load(dir string) (map[string]dashboard.Dashboard, error) {
	register()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboard (*.json) in %s", dir)
	}
	out := map[string]dashboard.Dashboard{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		// The SDK's strict decoding reports every difference from the
		// schema, but loses the panels (v0.0.22 returns an empty error
		// list typed, and a panel that "failed" is not kept): it checks,
		// the plain decoding reads.
		var strict dashboard.Dashboard
		if err := sdkError(strict.UnmarshalJSONStrict(raw)); err != nil {
			return nil, fmt.Errorf("%s: not a dashboard as Grafana's schema has it: %w", f, err)
		}
		var d dashboard.Dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := sdkError(d.Validate()); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if d.Uid == nil || *d.Uid == "" {
			return nil, fmt.Errorf("%s: no uid: provisioning needs one to keep the dashboard's address", f)
		}
		out[filepath.Base(f)] = d
	}
	return out, nil
}

// sdkError is err, or nil for the SDK's empty list of errors (it returns
// one, typed, where it found none).
func sdkError(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

// Panel is one panel of a dashboard, with its targets.
type Panel struct {
	Dashboard, Title, Kind string
	Datasource             string  // uid of the panel's data source
	Interval               string  // minimum interval, as written ("" for none)
	MaxDataPoints          float64 // 0: not set (Grafana then takes the panel's width)
	Queries                []InfluxQuery
	Maths                  []expr.TypeMath
}

// Panels lists d's panels (those inside rows too) and their targets; a
// target of another kind than InfluxDB's and expressions is an error: the
// check could not run it.
func Panels(d dashboard.Dashboard) ([]Panel, error) {
	var raw []dashboard.Panel
	for _, p := range d.Panels {
		if p.Panel != nil {
			raw = append(raw, *p.Panel)
		}
		if p.RowPanel != nil {
			for _, in := range p.RowPanel.Panels {
				raw = append(raw, in)
			}
		}
	}
	var out []Panel
	for _, p := range raw {
		title := deref(p.Title)
		pp := Panel{Dashboard: deref(d.Uid), Title: title, Kind: p.Type, Interval: deref(p.Interval), MaxDataPoints: deref(p.MaxDataPoints)}
		if p.Datasource != nil {
			pp.Datasource = deref(p.Datasource.Uid)
		}
		for _, t := range p.Targets {
			switch q := t.(type) {
			case InfluxQuery:
				pp.Queries = append(pp.Queries, q)
			case *expr.Expr:
				if q.TypeMath == nil {
					return nil, fmt.Errorf("panel %q: an expression other than math", title)
				}
				pp.Maths = append(pp.Maths, *q.TypeMath)
			default:
				return nil, fmt.Errorf("panel %q: a target of type %s the check cannot run", title, t.DataqueryType())
			}
		}
		if len(pp.Queries) == 0 {
			return nil, fmt.Errorf("panel %q: no query", title)
		}
		out = append(out, pp)
	}
	return out, nil
}

// Variable is one of a dashboard's variables, as the check expands it.
type Variable struct {
	Name, Kind string
	Query      string // query variables: the query; custom: the values, comma-separated
	Datasource string // query variables: its data source's uid
	Regex      string // datasource variables: which data sources
}

// Variables lists d's variables: of the kinds query, custom and
// datasource, the ones the dashboards use.
func Variables(d dashboard.Dashboard) ([]Variable, error) {
	var out []Variable
	for _, v := range d.Templating.List {
		vv := Variable{Name: v.Name, Kind: string(v.Type), Regex: deref(v.Regex)}
		if v.Query != nil {
			vv.Query = deref(v.Query.String)
		}
		if v.Datasource != nil {
			vv.Datasource = deref(v.Datasource.Uid)
		}
		switch vv.Kind {
		case "query", "custom", "datasource":
		default:
			return nil, fmt.Errorf("variable %s: kind %q, which the check does not expand", v.Name, vv.Kind)
		}
		out = append(out, vv)
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
