package mailevent

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

type timeFormat int

const (
	timeAuto timeFormat = iota
	timeRFC3339
	timeUnix
	timeUnixMs
	timeUnixUs
	timeUnixNs
	timeLayout
)

var timeFormatNames = map[string]timeFormat{
	"auto": timeAuto, "rfc3339": timeRFC3339, "unix": timeUnix,
	"unix_ms": timeUnixMs, "unix_us": timeUnixUs, "unix_ns": timeUnixNs,
}

// parseTime reads the event time with nanosecond precision.
func (d *Decoder) parseTime(v scalar) (time.Time, error) {
	switch v.t {
	case fastjson.TypeString:
		s := string(v.raw)
		switch d.timeFormat {
		case timeLayout:
			return time.Parse(d.timeLayout, s)
		case timeRFC3339:
			return time.Parse(time.RFC3339Nano, s)
		case timeAuto:
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t, nil
			}
			if isDigits(s) {
				return epoch(s, d.timeFormat)
			}
			return time.Time{}, fmt.Errorf("%q is neither RFC3339 nor an epoch number", s)
		default:
			return epoch(s, d.timeFormat)
		}
	case fastjson.TypeNumber:
		if d.timeFormat == timeRFC3339 || d.timeFormat == timeLayout {
			return time.Time{}, fmt.Errorf("got number %s, want a time string", v.raw)
		}
		return epoch(string(v.raw), d.timeFormat)
	default:
		return time.Time{}, fmt.Errorf("got a JSON %s, want a time", v.t)
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// epoch parses an epoch number exactly: integers and decimal fractions
// without going through float64 (which holds only ~16 digits: ns since 1970
// need 19). In auto mode the unit is chosen by the integer part's magnitude.
func epoch(s string, f timeFormat) (time.Time, error) {
	if strings.ContainsAny(s, "eE") { // 1.7e9: rare, and float64 is all it says
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || x < 0 || x >= 1e19 {
			return time.Time{}, fmt.Errorf("%q is not an epoch time", s)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || n < 0 || !isDigits(frac) && frac != "" || strings.Contains(frac, ".") {
		return time.Time{}, fmt.Errorf("%q is not an epoch time", s)
	}
	if f == timeAuto {
		f = unitByMagnitude(n)
	}
	var perUnit int64
	switch f {
	case timeUnix:
		perUnit = 1e9
	case timeUnixMs:
		perUnit = 1e6
	case timeUnixUs:
		perUnit = 1e3
	default:
		perUnit = 1
	}
	if n > math.MaxInt64/perUnit {
		return time.Time{}, fmt.Errorf("%q is out of range", s)
	}
	ns := n * perUnit
	// The fraction, digit by digit, down to the nanosecond; finer digits
	// are cut (truncation, as time.Parse does with RFC3339 fractions).
	for scale := perUnit / 10; scale > 0 && frac != ""; scale /= 10 {
		ns += int64(frac[0]-'0') * scale
		frac = frac[1:]
	}
	return time.Unix(0, ns).UTC(), nil
}

// unitByMagnitude guesses an epoch unit for times between 1973 and 5138.
func unitByMagnitude(n int64) timeFormat {
	switch {
	case n < 1e11:
		return timeUnix
	case n < 1e14:
		return timeUnixMs
	case n < 1e17:
		return timeUnixUs
	default:
		return timeUnixNs
	}
}
