// Package agentconf reads, from the configuration the running Telegraf
// was started with, what an input must size itself by and cannot ask the
// agent for: the metric_batch_size its outputs write with.
//
// An input that acknowledges its messages only once the outputs wrote
// them (mailevents) must let more messages be unacknowledged than a batch
// holds: an output writes as soon as a batch is full, else only every
// flush_interval, so a smaller window leaves each flush_interval with less
// than a batch in hand.
package agentconf

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/toml"
	"github.com/influxdata/toml/ast"
)

// DefaultBatchSize is Telegraf's metric_batch_size when none is set.
const DefaultBatchSize = 1000

// Batch is a metric_batch_size and where it is set.
type Batch struct {
	Size  int
	Where string // "[agent] of /etc/telegraf/telegraf.conf", "Telegraf's default", ...
}

// Sources lists the configuration files Telegraf reads, given its command
// line: every --config, and the *.conf files of every --config-directory;
// with neither, Telegraf's default paths ($TELEGRAF_CONFIG_PATH,
// ~/.telegraf/telegraf.conf, /etc/telegraf/telegraf.conf and
// /etc/telegraf/telegraf.d). Configurations fetched from a URL are left
// out.
func Sources(args []string) ([]string, error) {
	var files, dirs []string
	for i := 0; i < len(args); i++ {
		name, value, inline := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || (name != "config" && name != "config-directory") {
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				break
			}
			i++
			value = args[i]
		}
		if name == "config" {
			files = append(files, value)
		} else {
			dirs = append(dirs, value)
		}
	}
	if len(files) == 0 && len(dirs) == 0 {
		var err error
		if files, err = config.GetDefaultConfigPath(); err != nil {
			return nil, err
		}
	}
	for _, d := range dirs {
		found, err := config.WalkDirectory(d)
		if err != nil {
			return nil, err
		}
		files = append(files, found...)
	}
	local := files[:0]
	for _, f := range files {
		if !strings.Contains(f, "://") {
			local = append(local, f)
		}
	}
	return local, nil
}

// LargestBatch is the largest metric_batch_size any output of the files
// writes with: the [agent] table's (Telegraf's default if none is set),
// or an output's own.
func LargestBatch(files []string) (Batch, error) {
	agent := Batch{Size: DefaultBatchSize, Where: "Telegraf's default"}
	var outputs []Batch
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tbl, err := toml.Parse(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if a, ok := tbl.Fields["agent"].(*ast.Table); ok {
			if n, ok, err := batchSize(a); err != nil {
				errs = append(errs, fmt.Errorf("[agent] of %s: %w", f, err))
			} else if ok {
				agent = Batch{Size: n, Where: "[agent] of " + f}
			}
		}
		outs, _ := tbl.Fields["outputs"].(*ast.Table)
		if outs == nil {
			continue
		}
		for kind, v := range outs.Fields {
			tables, _ := v.([]*ast.Table)
			if t, ok := v.(*ast.Table); ok {
				tables = []*ast.Table{t}
			}
			for _, t := range tables {
				if n, ok, err := batchSize(t); err != nil {
					errs = append(errs, fmt.Errorf("[[outputs.%s]] of %s: %w", kind, f, err))
				} else if ok {
					outputs = append(outputs, Batch{Size: n, Where: fmt.Sprintf("[[outputs.%s]] of %s", kind, f)})
				}
			}
		}
	}
	largest := agent
	for _, b := range outputs {
		if b.Size > largest.Size {
			largest = b
		}
	}
	return largest, errors.Join(errs...)
}

// batchSize reads a table's metric_batch_size, if it sets one.
func batchSize(t *ast.Table) (int, bool, error) {
	kv, ok := t.Fields["metric_batch_size"].(*ast.KeyValue)
	if !ok {
		return 0, false, nil
	}
	i, ok := kv.Value.(*ast.Integer)
	if !ok {
		return 0, false, fmt.Errorf("metric_batch_size %s is not an integer", kv.Value.Source())
	}
	n, err := i.Int()
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("invalid metric_batch_size %s", i.Value)
	}
	return int(n), true, nil
}
