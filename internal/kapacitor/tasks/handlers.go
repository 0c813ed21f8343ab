package tasks

// Alert handlers as code: the [[handler]]s of tasks.toml are Kapacitor
// topic handlers (where a topic's alerts go: post, exec, Slack,
// PagerDuty, e-mail, Alerta…), planned, applied, listed and pruned with
// the tasks.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	client "github.com/influxdata/kapacitor/client/v1"
)

// HandlerSpec is one [[handler]] of tasks.toml.
type HandlerSpec struct {
	Name   string   `toml:"name"`   // the handler ID is IDPrefix + Name
	Topics []string `toml:"topics"` // the alerts' topics (the scripts' `topic` vars): one handler on each
	Kind   string   `toml:"kind"`   // Kapacitor's handler kind: post, exec, slack, pagerduty2, smtp, alerta, log…
	Match  string   `toml:"match"`  // Kapacitor's match expression, e.g. "level() == CRITICAL"; empty: every alert
	// Options are the kind's options, as Kapacitor documents them
	// (post: url, headers; exec: prog, args; slack: channel…). ${NAME}
	// takes the environment's NAME: a handler whose options name a
	// variable that is unset or empty is not deployed, and the plan says
	// so.
	Options map[string]any `toml:"options"`
}

// Handler is a handler as tasks.toml wants it.
type Handler struct {
	ID, Topic, Kind, Match string
	Options                map[string]any
	// Unset names the variables its options use that are unset or
	// empty: the handler is not deployed.
	Unset []string
}

// loadHandlers checks the [[handler]]s; raw are they as written, before
// the environment's ${NAME}s were put in.
func (f *File) loadHandlers(raw []HandlerSpec) error {
	seen := map[string]bool{}
	for i, h := range f.HandlerSpecs {
		where := fmt.Sprintf("handler %d (%q)", i+1, h.Name)
		if h.Name == "" || len(h.Topics) == 0 || h.Kind == "" {
			return fmt.Errorf("%s: %s: name, topics and kind must be set", f.path, where)
		}
		for _, topic := range h.Topics {
			if seen[topic+"/"+h.Name] {
				return fmt.Errorf("%s: %s is defined twice on topic %q", f.path, where, topic)
			}
			seen[topic+"/"+h.Name] = true
			d := Handler{ID: f.IDPrefix + h.Name, Topic: topic, Kind: h.Kind, Match: h.Match, Options: normalized(h.Options)}
			if i < len(raw) {
				d.Unset = unsetVars(raw[i].Options)
			}
			f.handlers = append(f.handlers, d)
		}
	}
	return nil
}

// unsetVars lists the ${NAME}s in the option values, at any depth, that
// the environment leaves unset or empty.
func unsetVars(opts any) []string {
	seen := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			for _, m := range braced.FindAllStringSubmatch(x, -1) {
				if os.Getenv(m[1]) == "" {
					seen["$"+m[1]] = true
				}
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(opts)
	return slices.Sorted(maps.Keys(seen))
}

// normalized is options as Kapacitor's JSON gives them back (numbers as
// float64, lists as []any), so that they compare.
func normalized(opts map[string]any) map[string]any {
	if opts == nil {
		return map[string]any{}
	}
	b, err := json.Marshal(opts)
	if err != nil {
		return opts
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return opts
	}
	return out
}

// Handlers are the file's handlers.
func (f *File) Handlers() []Handler { return f.handlers }

// managedHandlers lists the handlers whose ID has the prefix, on every
// topic Kapacitor has and every topic the file names.
func managedHandlers(c *client.Client, prefix string, topics []string) (map[string]client.TopicHandler, error) {
	list, err := c.ListTopics(nil)
	if err != nil {
		return nil, fmt.Errorf("listing Kapacitor's topics: %w", err)
	}
	all := map[string]bool{}
	for _, t := range list.Topics {
		all[t.ID] = true
	}
	for _, t := range topics {
		all[t] = true
	}
	out := map[string]client.TopicHandler{}
	for _, topic := range slices.Sorted(maps.Keys(all)) {
		// A topic Kapacitor does not have yet lists no handler (creating
		// one creates the topic).
		hs, err := c.ListTopicHandlers(c.TopicHandlersLink(topic), nil)
		if err != nil {
			return nil, fmt.Errorf("listing the handlers of topic %s: %w", topic, err)
		}
		for _, h := range hs.Handlers {
			if strings.HasPrefix(h.ID, prefix) {
				out[topic+"/"+h.ID] = h
			}
		}
	}
	return out, nil
}

// handlerLabel names a handler in plans and lists.
func handlerLabel(topic, id string) string { return "handler " + topic + "/" + id }

// planHandlers adds the handlers' actions to a plan.
func planHandlers(c *client.Client, f *File, prune bool) ([]Action, error) {
	var topics []string
	for _, h := range f.handlers {
		topics = append(topics, h.Topic)
	}
	have, err := managedHandlers(c, f.IDPrefix, topics)
	if err != nil {
		return nil, err
	}
	var plan []Action
	for i := range f.handlers {
		h := &f.handlers[i]
		key := h.Topic + "/" + h.ID
		got, ok := have[key]
		delete(have, key)
		label := handlerLabel(h.Topic, h.ID)
		switch {
		case len(h.Unset) > 0 && ok:
			plan = append(plan, Action{Kind: "delete", ID: label, Details: []string{strings.Join(h.Unset, ", ") + " unset or empty"}, handler: h})
		case len(h.Unset) > 0:
			plan = append(plan, Action{Kind: "skipped", ID: label, Details: []string{strings.Join(h.Unset, ", ") + " unset or empty: not deployed"}})
		case !ok:
			plan = append(plan, Action{Kind: "create", ID: label, Details: []string{fmt.Sprintf("kind %s%s", h.Kind, matchText(h.Match))}, handler: h})
		default:
			if d := handlerDrift(got, h); len(d) > 0 {
				plan = append(plan, Action{Kind: "update", ID: label, Details: d, handler: h})
			} else {
				plan = append(plan, Action{Kind: "unchanged", ID: label})
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(have)) {
		topic, id, _ := strings.Cut(key, "/")
		if prune {
			plan = append(plan, Action{Kind: "delete", ID: handlerLabel(topic, id), Details: []string{"no longer in tasks.toml"},
				handler: &Handler{ID: id, Topic: topic}})
		}
	}
	return plan, nil
}

func matchText(m string) string {
	if m == "" {
		return ""
	}
	return ", match " + m
}

// handlerDrift lists how a deployed handler differs from the wanted one:
// its kind, match and options (Kapacitor keeps them as given).
func handlerDrift(got client.TopicHandler, want *Handler) []string {
	var out []string
	if got.Kind != want.Kind {
		out = append(out, fmt.Sprintf("kind: %s -> %s", got.Kind, want.Kind))
	}
	if got.Match != want.Match {
		out = append(out, fmt.Sprintf("match: %q -> %q", got.Match, want.Match))
	}
	have := normalized(got.Options)
	keys := map[string]bool{}
	for k := range want.Options {
		keys[k] = true
	}
	for k := range have { // options deployed but no longer in the file
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		w, inFile := want.Options[k]
		switch h, deployed := have[k]; {
		case !inFile:
			out = append(out, fmt.Sprintf("option %s: %v -> (none)", k, h))
		case !deployed || !reflect.DeepEqual(h, w):
			out = append(out, fmt.Sprintf("option %s: %v -> %v", k, h, w))
		}
	}
	return out
}

// applyHandler carries out a handler's action.
func applyHandler(c *client.Client, a Action) error {
	h := a.handler
	opt := client.TopicHandlerOptions{Topic: h.Topic, ID: h.ID, Kind: h.Kind, Options: h.Options, Match: h.Match}
	var err error
	switch a.Kind {
	case "create":
		_, err = c.CreateTopicHandler(c.TopicHandlersLink(h.Topic), opt)
	case "update":
		_, err = c.ReplaceTopicHandler(c.TopicHandlerLink(h.Topic, h.ID), opt)
	case "delete":
		err = c.DeleteTopicHandler(c.TopicHandlerLink(h.Topic, h.ID))
	}
	return err
}

// listHandlers is List's part for handlers.
func listHandlers(c *client.Client, f *File) ([]Deployed, error) {
	var topics []string
	want := map[string]*Handler{}
	for i, h := range f.handlers {
		topics = append(topics, h.Topic)
		want[h.Topic+"/"+h.ID] = &f.handlers[i]
	}
	have, err := managedHandlers(c, f.IDPrefix, topics)
	if err != nil {
		return nil, err
	}
	var out []Deployed
	for _, key := range slices.Sorted(maps.Keys(have)) {
		topic, id, _ := strings.Cut(key, "/")
		dep := Deployed{ID: handlerLabel(topic, id), Status: "handler " + have[key].Kind}
		w, ok := want[key]
		switch {
		case !ok:
			dep.Drift = "not in tasks.toml (prune removes it)"
		case len(w.Unset) > 0:
			dep.Drift = strings.Join(w.Unset, ", ") + " now unset (apply removes it)"
		default:
			dep.Drift = "in sync"
			if d := handlerDrift(have[key], w); len(d) > 0 {
				dep.Drift = "differs from tasks.toml: " + strings.Join(d, "; ")
			}
		}
		out = append(out, dep)
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		if _, ok := have[key]; !ok {
			w := want[key]
			drift := "in tasks.toml, not deployed (apply creates it)"
			if len(w.Unset) > 0 {
				drift = "not deployed: " + strings.Join(w.Unset, ", ") + " unset or empty"
			}
			out = append(out, Deployed{ID: handlerLabel(w.Topic, w.ID), Status: "absent", Drift: drift})
		}
	}
	return out, nil
}
