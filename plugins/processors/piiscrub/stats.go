package piiscrub

import "github.com/influxdata/telegraf/selfstat"

// Reasons a value was invalid for its rule.
const (
	invalidNotString = iota // hash, email_domain or ip_prefix on a number or boolean: dropped
	invalidNotEmail         // email_domain on a value that is not a mailbox: on_invalid
	invalidNotIP            // ip_prefix on a value that is not an address: on_invalid
	invalidUTF8             // redact on invalid UTF-8: repaired with U+FFFD
	invalidIPDomain         // email_domain on a mailbox at an IP address: on_invalid
	numInvalid
)

var invalidNames = [numInvalid]string{"not_string", "not_email", "not_ip", "invalid_utf8", "ip_domain"}

// counts are gathered per metric and added to the self-metrics once.
type counts struct {
	hashed, masked, dropped, truncated int64
	redacted                           [4]int // by pii.Kind
	invalid                            [numInvalid]int64
}

// stats are published by inputs.internal as internal_piiscrub (values_*)
// and internal_piiscrub_redacted / internal_piiscrub_invalid by kind.
type stats struct {
	hashed, masked, dropped, truncated selfstat.Stat
	redacted                           [4]selfstat.Stat
	invalid                            [numInvalid]selfstat.Stat
}

func newStats() *stats {
	tags := map[string]string{}
	s := &stats{
		hashed:    selfstat.Register("piiscrub", "values_hashed", tags),
		masked:    selfstat.Register("piiscrub", "values_masked", tags),
		dropped:   selfstat.Register("piiscrub", "values_dropped", tags),
		truncated: selfstat.Register("piiscrub", "values_truncated", tags),
	}
	for kind, name := range []string{1: "email", 2: "ipv4", 3: "ipv6"} {
		if name != "" {
			s.redacted[kind] = selfstat.Register("piiscrub_redacted", "values", map[string]string{"kind": name})
		}
	}
	for i, name := range invalidNames {
		s.invalid[i] = selfstat.Register("piiscrub_invalid", "values", map[string]string{"reason": name})
	}
	return s
}

func (s *stats) add(c *counts) {
	for _, x := range []struct {
		st selfstat.Stat
		n  int64
	}{{s.hashed, c.hashed}, {s.masked, c.masked}, {s.dropped, c.dropped}, {s.truncated, c.truncated}} {
		if x.n != 0 {
			x.st.Incr(x.n)
		}
	}
	for k := 1; k < len(c.redacted); k++ {
		if c.redacted[k] != 0 {
			s.redacted[k].Incr(int64(c.redacted[k]))
		}
	}
	for i, n := range c.invalid {
		if n != 0 {
			s.invalid[i].Incr(n)
		}
	}
}
