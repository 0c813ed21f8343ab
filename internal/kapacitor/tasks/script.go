// Package tasks deploys versioned TICKscripts to Kapacitor from a TOML file
// the way code is deployed: plan (what would change, with diffs), apply
// (idempotently), list (deployed version, status, errors, drift) and prune
// (managed tasks no longer in the file). Managed tasks carry an ID prefix;
// tasks without it are never touched.
package tasks

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"
)

// Script is a TICKscript as the repository holds it.
type Script struct {
	Path    string
	Text    string
	Version int                       // from the "// version: N" header, 0 if none
	Type    client.TaskType           // stream or batch
	Vars    map[string]client.VarType // the tunables it declares
	// Defaults is the literal text of each tunable's default ("5m").
	Defaults map[string]string
	HasDBRP  bool
}

var (
	versionRe = regexp.MustCompile(`(?m)^//\s*version:\s*(\d+)\s*$`)
	varRe     = regexp.MustCompile(`(?m)^var\s+([A-Za-z_][A-Za-z0-9_]*)\s*(=\s*(.+?)|\s+([a-z]+))\s*$`)
	durRe     = regexp.MustCompile(`^\d+(u|µ|ms|s|m|h|d|w)$`)
	dbrpRe    = regexp.MustCompile(`(?m)^dbrp\s+"`)
)

// ParseScript reads what the loader needs from a TICKscript: its version,
// type, whether it names its dbrp, and the type of each `var` that is a
// literal (a duration, number, string, boolean, lambda, regex or list);
// vars bound to pipelines are not tunables and are left out.
func ParseScript(path, text string) (*Script, error) {
	s := &Script{Path: path, Text: text, Vars: make(map[string]client.VarType), Defaults: make(map[string]string),
		HasDBRP: dbrpRe.MatchString(text)}
	if m := versionRe.FindStringSubmatch(text); m != nil {
		s.Version, _ = strconv.Atoi(m[1])
	}
	switch {
	case regexp.MustCompile(`(?m)^\s*(var\s+\w+\s*=\s*)?stream\b`).MatchString(text):
		s.Type = client.StreamTask
	case regexp.MustCompile(`(?m)^\s*(var\s+\w+\s*=\s*)?batch\b`).MatchString(text):
		s.Type = client.BatchTask
	default:
		return nil, fmt.Errorf("%s: neither a stream nor a batch script", path)
	}
	for _, m := range varRe.FindAllStringSubmatch(text, -1) {
		name, expr, declared := m[1], strings.TrimSpace(m[3]), m[4]
		if declared != "" { // `var x duration`: a template declaration
			t, err := parseVarType(declared)
			if err != nil {
				return nil, fmt.Errorf("%s: var %q: %w", path, name, err)
			}
			s.Vars[name] = t
			continue
		}
		if t := literalType(expr); t != client.VarUnknown {
			s.Vars[name] = t
			s.Defaults[name] = expr
		}
	}
	return s, nil
}

func parseVarType(s string) (client.VarType, error) {
	var t client.VarType
	if err := t.UnmarshalText([]byte(s)); err != nil {
		return client.VarUnknown, fmt.Errorf("unknown type %q", s)
	}
	return t, nil
}

// literalType is the type of a TICKscript literal, or VarUnknown.
func literalType(expr string) client.VarType {
	switch {
	case durRe.MatchString(expr):
		return client.VarDuration
	case expr == "TRUE" || expr == "FALSE":
		return client.VarBool
	case strings.HasPrefix(expr, "lambda:"):
		return client.VarLambda
	case strings.HasPrefix(expr, "'") && strings.HasSuffix(expr, "'") && len(expr) >= 2:
		return client.VarString
	case strings.HasPrefix(expr, "/") && strings.HasSuffix(expr, "/") && len(expr) >= 2:
		return client.VarRegex
	case strings.HasPrefix(expr, "[") && strings.HasSuffix(expr, "]"):
		return client.VarList
	}
	if _, err := strconv.ParseInt(expr, 10, 64); err == nil {
		return client.VarInt
	}
	if _, err := strconv.ParseFloat(expr, 64); err == nil {
		return client.VarFloat
	}
	return client.VarUnknown
}

// toVar checks a TOML value against the declared type and converts it to
// what Kapacitor takes.
func toVar(t client.VarType, v any) (client.Var, error) {
	bad := func(want string) (client.Var, error) {
		return client.Var{}, fmt.Errorf("want %s, got %T %v", want, v, v)
	}
	switch t {
	case client.VarDuration:
		s, ok := v.(string)
		if !ok {
			return bad(`a duration string like "5m"`)
		}
		d, err := parseDuration(s)
		if err != nil {
			return bad(`a duration string like "5m"`)
		}
		return client.Var{Type: t, Value: d}, nil
	case client.VarInt:
		n, ok := v.(int64)
		if !ok {
			return bad("an integer")
		}
		return client.Var{Type: t, Value: n}, nil
	case client.VarFloat:
		switch x := v.(type) {
		case float64:
			return client.Var{Type: t, Value: x}, nil
		case int64:
			return client.Var{Type: t, Value: float64(x)}, nil
		}
		return bad("a number")
	case client.VarBool:
		b, ok := v.(bool)
		if !ok {
			return bad("true or false")
		}
		return client.Var{Type: t, Value: b}, nil
	case client.VarString, client.VarRegex:
		s, ok := v.(string)
		if !ok {
			return bad("a string")
		}
		return client.Var{Type: t, Value: s}, nil
	case client.VarLambda:
		s, ok := v.(string)
		if !ok || !strings.HasPrefix(strings.TrimSpace(s), "lambda:") {
			return bad(`a string "lambda: <expression>"`)
		}
		return client.Var{Type: t, Value: strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "lambda:"))}, nil
	case client.VarList:
		items, ok := v.([]any)
		if !ok {
			return bad("a list of strings")
		}
		list := make([]client.Var, len(items))
		for i, it := range items {
			s, ok := it.(string)
			if !ok {
				return bad("a list of strings")
			}
			list[i] = client.Var{Type: client.VarString, Value: s}
		}
		return client.Var{Type: t, Value: list}, nil
	}
	return client.Var{}, fmt.Errorf("type %s cannot be set from tasks.toml", t)
}

// parseDuration takes Go durations and TICKscript's d and w units.
func parseDuration(s string) (time.Duration, error) {
	for unit, d := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			if i, err := strconv.ParseInt(n, 10, 64); err == nil && i >= 0 {
				return time.Duration(i) * d, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}
