// Package check holds the Nagios / Icinga checks of mailtick check: one
// status line with perfdata, and the plugin exit codes (0 OK, 1 WARNING,
// 2 CRITICAL, 3 UNKNOWN), per the Monitoring Plugins guidelines.
package check

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailtick/mailtick/internal/influxq"
)

// Status is a plugin exit code.
type Status int

const (
	OK Status = iota
	Warning
	Critical
	Unknown
)

func (s Status) String() string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[s]
}

// Volume are the options of `mailtick check volume`. A threshold < 0 is not
// set.
type Volume struct {
	Querier               influxq.Querier // its Timeout must be set: Nagios' own is 10s by default
	Database, Measurement string
	DC, Direction         string
	Window                time.Duration
	WarnBelow, CritBelow  int64
	WarnAbove, CritAbove  int64
}

// Result is what a check prints and exits with.
type Result struct {
	Status Status
	Line   string
}

func unknown(format string, args ...any) Result {
	return Result{Unknown, "MAIL VOLUME UNKNOWN - " + fmt.Sprintf(format, args...)}
}

// Run counts the mails of a DC and direction in the last window and rates
// the count against the thresholds.
func (v Volume) Run() Result {
	if v.DC == "" || v.Direction == "" {
		return unknown("--dc and --direction are required")
	}
	if v.Window <= 0 {
		return unknown("invalid --window %s", v.Window)
	}
	if v.CritBelow >= 0 && v.WarnBelow >= 0 && v.CritBelow > v.WarnBelow {
		return unknown("--crit-below %d is above --warn-below %d", v.CritBelow, v.WarnBelow)
	}
	if v.CritAbove >= 0 && v.WarnAbove >= 0 && v.CritAbove < v.WarnAbove {
		return unknown("--crit-above %d is below --warn-above %d", v.CritAbove, v.WarnAbove)
	}
	q := fmt.Sprintf(`SELECT count("events") FROM %q WHERE "dc" = %s AND "direction" = %s AND time > now() - %ds`,
		v.Measurement, influxq.String(v.DC), influxq.String(v.Direction), int64(v.Window.Seconds()))
	if v.Querier.Timeout <= 0 {
		return unknown("invalid --timeout %s", v.Querier.Timeout)
	}
	series, err := v.Querier.Query(v.Database, q)
	if err != nil {
		return unknown("cannot ask InfluxDB %s: %v", v.Querier.URL, err)
	}
	var n int64
	if len(series) > 0 && len(series[0].Values) > 0 {
		num, ok := series[0].Values[0][1].(json.Number)
		if !ok {
			return unknown("unexpected answer from InfluxDB: %v", series[0].Values[0])
		}
		if n, err = num.Int64(); err != nil {
			return unknown("unexpected count %q from InfluxDB", num)
		}
	}
	status := OK
	switch {
	case v.CritBelow >= 0 && n < v.CritBelow, v.CritAbove >= 0 && n > v.CritAbove:
		status = Critical
	case v.WarnBelow >= 0 && n < v.WarnBelow, v.WarnAbove >= 0 && n > v.WarnAbove:
		status = Warning
	}
	line := fmt.Sprintf("MAIL VOLUME %s - %d %s mails in %s in the last %s | mails=%d;%s;%s;0;",
		status, n, v.Direction, v.DC, v.Window, n, rng(v.WarnBelow, v.WarnAbove), rng(v.CritBelow, v.CritAbove))
	return Result{status, line}
}

// rng renders a threshold range of the plugin guidelines: "lo:hi" alerts
// outside lo..hi; "lo:" only below lo; "~:hi" only above hi.
func rng(below, above int64) string {
	switch {
	case below < 0 && above < 0:
		return ""
	case above < 0:
		return fmt.Sprintf("%d:", below)
	case below < 0:
		return fmt.Sprintf("~:%d", above)
	}
	return fmt.Sprintf("%d:%d", below, above)
}
