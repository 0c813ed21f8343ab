package piiscrub

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/pii"
	"github.com/mailtick/mailtick/internal/pii/piitest"
	"github.com/mailtick/mailtick/internal/testutil/plugintest"
)

const testKey = "0123456789abcdef-test-key"

func newScrub(t testing.TB, def string, rules ...*Rule) *PIIScrub {
	t.Helper()
	p := &PIIScrub{
		Default:        def,
		HashKey:        config.NewSecret([]byte(testKey)),
		HashKeyIDTag:   "pii_key_id",
		HashLength:     12,
		MaxRedactBytes: config.Size(64 * 1024),
		LocalPartCase:  "fold",
		Rules:          rules,
		Log:            testutil.Logger{},
	}
	require.NoError(t, p.Init())
	require.NoError(t, p.Start(nil))
	return p
}

var at = time.Unix(1795356000, 0)

func TestActions(t *testing.T) {
	p := newScrub(t, "keep")
	alice := string(p.pseudonym(nil, "alice@example.com"))
	aliceLower := string(p.pseudonym(nil, "alice@example.com"))
	require.Len(t, alice, 16, "12 bytes base64url")
	tests := []struct {
		name  string
		rule  *Rule
		value any
		want  any // nil: the key is removed
	}{
		{"hash", &Rule{Action: "hash"}, "alice@example.com", alice},
		{"drop", &Rule{Action: "drop"}, "x", nil},
		{"keep", &Rule{Action: "keep"}, "alice@example.com", "alice@example.com"},
		{"email_domain", &Rule{Action: "email_domain"}, "Alice@Example.COM", "example.com"},
		{"email_domain in angle brackets", &Rule{Action: "email_domain"}, "<bob@x.org>", "x.org"},
		{"email_domain with hashed local part", &Rule{Action: "email_domain", LocalPart: "hash"}, "Alice@Example.com", aliceLower + ".example.com"},
		{"email_domain invalid dropped", &Rule{Action: "email_domain"}, "not a mailbox", nil},
		{"email_domain on an IP literal", &Rule{Action: "email_domain"}, "user@[203.0.113.7]", nil},
		{"email_domain on a bare IP", &Rule{Action: "email_domain", OnInvalid: "keep"}, "user@192.0.2.1", "user@192.0.2.1"},
		{"email_domain on a bare IPv6", &Rule{Action: "email_domain"}, "wanda@2001:db8::9", nil},
		{"redact a user at a bare IPv6", &Rule{Action: "redact"}, "wanda@2001:db8::9's password:", "[email]'s password:"},
		{"redact an escaped quote in a quoted local part", &Rule{Action: "redact"}, `<"ivy\"q"@example.org>`, "<[email]>"},
		{"email_domain invalid kept", &Rule{Action: "email_domain", OnInvalid: "keep"}, "postmaster", "postmaster"},
		{"email_domain invalid hashed", &Rule{Action: "email_domain", OnInvalid: "hash"}, "alice@example.com@", alice[:0] + string(p.pseudonym(nil, "alice@example.com@"))},
		{"ip_prefix v4", &Rule{Action: "ip_prefix"}, "203.0.113.7", "203.0.113.0/24"},
		{"ip_prefix v4 /16", &Rule{Action: "ip_prefix", IPv4Prefix: 16}, "203.0.113.7", "203.0.0.0/16"},
		{"ip_prefix v4 with port", &Rule{Action: "ip_prefix"}, "203.0.113.7:25", "203.0.113.0/24"},
		{"ip_prefix v6", &Rule{Action: "ip_prefix"}, "2001:db8:1:2::7", "2001:db8:1::/48"},
		{"ip_prefix v6 zone and brackets", &Rule{Action: "ip_prefix"}, "[fe80::1%eth0]", "fe80::/48"},
		{"ip_prefix v4-mapped", &Rule{Action: "ip_prefix"}, "::ffff:192.0.2.9", "192.0.2.0/24"},
		{"ip_prefix invalid dropped", &Rule{Action: "ip_prefix"}, "unknown", nil},
		{"ip_prefix invalid kept", &Rule{Action: "ip_prefix", OnInvalid: "keep"}, "unknown", "unknown"},
		{"redact placeholder", &Rule{Action: "redact"}, "550 5.1.1 <bob@x.org>: from [203.0.113.7]", "550 5.1.1 <[email]>: from [[ipv4]]"},
		{"redact pseudonym", &Rule{Action: "redact", RedactWith: "pseudonym"}, "to <alice@example.com>", "to <[email:" + alice + "]>"},
		{"redact clean text unchanged", &Rule{Action: "redact"}, "250 2.0.0 Ok: queued as 4F2A1C0D3B", "250 2.0.0 Ok: queued as 4F2A1C0D3B"},
		{"redact invalid UTF-8 repaired", &Rule{Action: "redact"}, "caf\xe9 bob@x.org", "caf\uFFFD [email]"},
		{"redact number kept", &Rule{Action: "redact"}, int64(550), int64(550)},
		{"hash number dropped", &Rule{Action: "hash"}, int64(550), nil},
		{"ip_prefix bool dropped", &Rule{Action: "ip_prefix"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rule.Keys = []string{"v"}
			p := newScrub(t, "keep", tt.rule)
			m := metric.New("mail_event", map[string]string{"dc": "dc1"}, map[string]any{"v": tt.value, "n": 1.0}, at)
			p.apply(m)
			got, ok := m.GetField("v")
			if tt.want == nil {
				require.False(t, ok, "want v removed, got %v", got)
			} else {
				require.Equal(t, tt.want, got)
			}
			require.Equal(t, map[string]any{"n": 1.0}, without(m.Fields(), "v"), "other fields untouched")

			// The same rule on a tag, where the value is a string.
			if s, isString := tt.value.(string); isString {
				m := metric.New("mail_event", map[string]string{"v": s}, map[string]any{"n": 1.0}, at)
				p.apply(m)
				tag, ok := m.GetTag("v")
				if tt.want == nil {
					require.False(t, ok)
				} else {
					require.Equal(t, tt.want, tag)
				}
			}
		})
	}
}

func without(m map[string]any, key string) map[string]any {
	delete(m, key)
	return m
}

func TestPseudonyms(t *testing.T) {
	p := newScrub(t, "keep")
	a1 := string(p.pseudonym(nil, "203.0.113.7"))
	require.Equal(t, a1, string(p.pseudonym(nil, "203.0.113.7")), "same input, same key: same pseudonym")
	require.NotEqual(t, a1, string(p.pseudonym(nil, "203.0.113.8")))
	other := newScrub(t, "keep")
	other.HashKey = config.NewSecret([]byte("another-key-of-16-bytes"))
	require.NoError(t, other.Start(nil))
	require.NotEqual(t, a1, string(other.pseudonym(nil, "203.0.113.7")), "another key, another pseudonym space")
	require.False(t, pii.Contains(a1))
}

func TestDefaultModes(t *testing.T) {
	in := func() telegraf.Metric {
		return metric.New("mail_event",
			map[string]string{"dc": "dc1", "mailer": "mx1 from 203.0.113.7"},
			map[string]any{"sender": "a@b.org", "note": "mail for c@d.org", "latency_ms": 12.5}, at)
	}
	rules := func() []*Rule {
		return []*Rule{{Keys: []string{"dc", "latency_ms"}, Action: "keep"}, {Keys: []string{"sender"}, Action: "email_domain"}}
	}
	tests := []struct {
		def    string
		tags   map[string]string
		fields map[string]any
	}{
		{"keep", map[string]string{"dc": "dc1", "mailer": "mx1 from 203.0.113.7"},
			map[string]any{"sender": "b.org", "note": "mail for c@d.org", "latency_ms": 12.5}},
		{"redact", map[string]string{"dc": "dc1", "mailer": "mx1 from [ipv4]"},
			map[string]any{"sender": "b.org", "note": "mail for [email]", "latency_ms": 12.5}},
		{"drop", map[string]string{"dc": "dc1"},
			map[string]any{"sender": "b.org", "latency_ms": 12.5}},
	}
	for _, tt := range tests {
		t.Run(tt.def, func(t *testing.T) {
			p := newScrub(t, tt.def, rules()...)
			m := in()
			p.apply(m)
			require.Equal(t, tt.tags, m.Tags())
			require.Equal(t, tt.fields, m.Fields())
		})
	}
}

func TestGlobsAndKeyID(t *testing.T) {
	p := newScrub(t, "drop",
		&Rule{Keys: []string{"smtp_*"}, Action: "redact"},
		&Rule{Keys: []string{"smtp_code"}, Action: "keep"},
	)
	p.HashKeyID = "2026-11"
	m := metric.New("m", nil, map[string]any{"smtp_code": int64(550), "smtp_response": "to a@b.org", "other": "x"}, at)
	p.apply(m)
	require.Equal(t, map[string]any{"smtp_code": int64(550), "smtp_response": "to [email]"}, m.Fields())
	require.Equal(t, map[string]string{"pii_key_id": "2026-11"}, m.Tags())
}

// Every outcome is counted once, by kind and reason.
func TestCounters(t *testing.T) {
	p := newScrub(t, "drop",
		&Rule{Keys: []string{"h"}, Action: "hash"},
		&Rule{Keys: []string{"e"}, Action: "email_domain"},
		&Rule{Keys: []string{"i"}, Action: "ip_prefix"},
		&Rule{Keys: []string{"r"}, Action: "redact"})
	before := func() map[string]int64 {
		out := map[string]int64{"hashed": p.stats.hashed.Get(), "masked": p.stats.masked.Get(), "dropped": p.stats.dropped.Get()}
		for kind, st := range p.stats.redacted {
			if st != nil {
				out["redacted "+pii.Kind(kind).String()] = st.Get()
			}
		}
		for why, st := range p.stats.invalid {
			out["invalid "+invalidNames[why]] = st.Get()
		}
		return out
	}
	was := before()
	p.apply(metric.New("m", nil, map[string]any{
		"h": "alice@example.com", "e": "user@[192.0.2.1]", "i": "not an ip", "r": "from bob@x.org at 203.0.113.7",
		"other": "x", "n": 550,
	}, at))
	now := before()
	delta := map[string]int64{}
	for k, v := range now {
		if d := v - was[k]; d != 0 {
			delta[k] = d
		}
	}
	require.Equal(t, map[string]int64{
		"hashed": 1, "redacted email": 1, "redacted ipv4": 1,
		"invalid ip_domain": 1, "invalid not_ip": 1,
		"dropped": 4, // e and i (on_invalid drop), other and n (default drop)
	}, delta)
}

func TestHugeStringBoundedCost(t *testing.T) {
	p := newScrub(t, "keep", &Rule{Keys: []string{"v"}, Action: "redact"})
	p.MaxRedactBytes = 1024
	huge := strings.Repeat("word ", 2<<20) + " a@b.org"
	m := metric.New("m", nil, map[string]any{"v": huge}, at)
	p.apply(m)
	v, _ := m.GetField("v")
	require.Equal(t, strings.Repeat("word ", 1024/5), v, "only the first max_redact_bytes are scanned and kept, cut between words")
}

// A cut never leaves part of an address: the token the limit falls in goes.
func TestTruncationKeepsNoPartOfAnAddress(t *testing.T) {
	p := newScrub(t, "keep", &Rule{Keys: []string{"v"}, Action: "redact"})
	text := "550 5.1.1 <zoe.quinn@example.com>: Recipient address rejected"
	for n := 1; n < len(text); n++ {
		p.MaxRedactBytes = config.Size(n)
		m := metric.New("m", nil, map[string]any{"v": text}, at)
		p.apply(m)
		v, _ := m.GetField("v")
		require.NotContains(t, v, "zoe", "max_redact_bytes %d", n)
		require.NotContains(t, v, "exam", "max_redact_bytes %d", n)
	}
}

// The public mail-text corpus through redact (both ways): no part of any
// address survives.
func TestRedactCorpus(t *testing.T) {
	for _, with := range []string{"placeholder", "pseudonym"} {
		p := newScrub(t, "keep", &Rule{Keys: []string{"v"}, Action: "redact", RedactWith: with})
		for _, c := range piitest.Corpus() {
			m := metric.New("m", map[string]string{"t": c.Text}, map[string]any{"v": c.Text}, at)
			p.apply(m)
			v, _ := m.GetField("v")
			require.Empty(t, piitest.Leftover(v.(string), c.Secrets), "%s (%s): %q", c.Source, with, v)
			require.False(t, pii.Contains(v.(string)), "%s (%s): %q", c.Source, with, v)
		}
	}
}

// One address, one pseudonym: however it is written, and wherever it
// stands (a field of its own, or inside a text after "to=").
func TestOnePseudonymPerAddress(t *testing.T) {
	p := newScrub(t, "keep",
		&Rule{Keys: []string{"sender"}, Action: "hash"},
		&Rule{Keys: []string{"text"}, Action: "redact", RedactWith: "pseudonym"})
	want := string(p.pseudonym(nil, "xena@example.com"))
	for _, form := range []string{"xena@example.com", "Xena@Example.COM", "<XENA@example.com>", "xena%40example.com"} {
		m := metric.New("m", nil, map[string]any{"sender": form}, at)
		p.apply(m)
		got, _ := m.GetField("sender")
		require.Equal(t, want, got, form)
	}
	for _, text := range []string{"to=xena@example.com", "sasl_username=Xena@example.com", "rcpts=a@x.org|xena@example.com", "u=xena%40example.com&x=1"} {
		m := metric.New("m", nil, map[string]any{"text": text}, at)
		p.apply(m)
		got, _ := m.GetField("text")
		require.Contains(t, got, "[email:"+want+"]", text)
	}

	// local_part_case = "keep": the domain is still folded.
	p.LocalPartCase = "keep"
	require.NoError(t, p.Init())
	require.NoError(t, p.Start(nil))
	require.NotEqual(t, string(p.pseudonym(nil, "Xena@example.com")), string(p.pseudonym(nil, "xena@example.com")))
	require.Equal(t, string(p.pseudonym(nil, "Xena@EXAMPLE.com")), string(p.pseudonym(nil, "Xena@example.com")))
}

func TestInit(t *testing.T) {
	tests := []struct {
		name string
		edit func(*PIIScrub)
		want string
	}{
		{"default", func(p *PIIScrub) { p.Default = "allow" }, `invalid "default" value "allow"`},
		{"action", func(p *PIIScrub) { p.Rules = []*Rule{{Keys: []string{"a"}, Action: "mask"}} }, `rule 1: invalid "action" value "mask"`},
		{"no keys", func(p *PIIScrub) { p.Rules = []*Rule{{Action: "drop"}} }, `rule 1 (drop): "keys" must name`},
		{"ipv4_prefix", func(p *PIIScrub) { p.Rules = []*Rule{{Keys: []string{"ip"}, Action: "ip_prefix", IPv4Prefix: 28}} }, `invalid "ipv4_prefix" value 28`},
		{"on_invalid", func(p *PIIScrub) { p.Rules = []*Rule{{Keys: []string{"ip"}, Action: "ip_prefix", OnInvalid: "skip"}} }, `invalid "on_invalid" value "skip"`},
		{"local_part", func(p *PIIScrub) { p.Rules = []*Rule{{Keys: []string{"e"}, Action: "email_domain", LocalPart: "keep"}} }, `invalid "local_part" value "keep"`},
		{"redact_with", func(p *PIIScrub) { p.Rules = []*Rule{{Keys: []string{"e"}, Action: "redact", RedactWith: "x"}} }, `invalid "redact_with" value "x"`},
		{"duplicate key", func(p *PIIScrub) {
			p.Rules = []*Rule{{Keys: []string{"a"}, Action: "keep"}, {Keys: []string{"a"}, Action: "drop"}}
		}, `rule 2: key "a" is already named`},
		{"hash without key", func(p *PIIScrub) {
			p.HashKey = config.Secret{}
			p.Rules = []*Rule{{Keys: []string{"a"}, Action: "hash"}}
		}, `"hash_key" is empty`},
		{"hash_length", func(p *PIIScrub) { p.HashLength = 4 }, `invalid "hash_length" value 4`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &PIIScrub{Default: "drop", HashKey: config.NewSecret([]byte(testKey)), HashKeyIDTag: "pii_key_id",
				HashLength: 12, MaxRedactBytes: 1024}
			tt.edit(p)
			require.ErrorContains(t, p.Init(), tt.want)
		})
	}
	short := &PIIScrub{Default: "drop", HashKey: config.NewSecret([]byte("short")), HashLength: 12, MaxRedactBytes: 1024,
		Rules: []*Rule{{Keys: []string{"a"}, Action: "hash"}}}
	require.NoError(t, short.Init())
	require.ErrorContains(t, short.Start(nil), "use at least 16 random bytes")
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"550 <bob@x.org> [203.0.113.7]", "2001:db8::1%eth0", "a@b.co@c.org", "\xff@x.org"} {
		f.Add(s)
	}
	p := newScrub(f, "redact", &Rule{Keys: []string{"p"}, Action: "redact", RedactWith: "pseudonym"})
	f.Fuzz(func(t *testing.T, s string) {
		m := metric.New("m", map[string]string{"t": s}, map[string]any{"f": s, "p": s, "n": 1.0}, at)
		p.apply(m)
		for _, tag := range m.TagList() {
			if pii.Contains(tag.Value) {
				t.Fatalf("tag %q keeps an address: %q", tag.Key, tag.Value)
			}
		}
		for _, fl := range m.FieldList() {
			if s, ok := fl.Value.(string); ok && pii.Contains(s) {
				t.Fatalf("field %q keeps an address: %q", fl.Key, s)
			}
		}
		require.True(t, m.HasField("n"), "a metric is never emptied by accident")
	})
}

// FuzzIPPrefix: what the IPv4 fast path of ip_prefix reads, net/netip
// reads as the same address, and both write the same network; what
// net/netip reads as a plain IPv4 address, the fast path reads too.
func FuzzIPPrefix(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.", " 1.2.3.4", "1..2.3", "::ffff:1.2.3.4"} {
		f.Add(s, uint8(24))
	}
	f.Fuzz(func(t *testing.T, s string, bits uint8) {
		n := int(bits % (pii.MaxIPv4Prefix + 1))
		a, fast := dottedQuad(s)
		want, err := netip.ParseAddr(s)
		if slow := err == nil && want.Is4(); fast != slow {
			t.Fatalf("%q: fast path %v, net/netip %v (%v)", s, fast, slow, err)
		}
		if !fast {
			return
		}
		require.Equal(t, want, netip.AddrFrom4(a), "%q", s)
		pfx, err := want.Prefix(n)
		require.NoError(t, err)
		require.Equal(t, pfx.String(), string(appendIPv4Prefix(nil, a, n)), "%q /%d", s, n)
	})
}

// TestGeneratedEventsLeaveNoPII: with every PII key configured (the
// recommended central config), no output string holds a sender, recipient
// or IP address of the input, nor anything the detector finds.
func TestGeneratedEventsLeaveNoPII(t *testing.T) {
	p := centralConfig(t)
	g, err := gen.New(gen.Config{Seed: 11, Senders: 500, Recipients: 5000})
	require.NoError(t, err)
	for i := 0; i < 5000; i++ {
		ev := g.Next().Event
		m := eventMetric(ev)
		p.apply(m)
		var values []string
		for _, tag := range m.TagList() {
			values = append(values, tag.Value)
		}
		for _, f := range m.FieldList() {
			if s, ok := f.Value.(string); ok {
				values = append(values, s)
			}
		}
		for _, v := range values {
			for _, secret := range []string{ev.Sender, ev.Recipient, ev.SenderIP} {
				require.NotContains(t, v, secret, "event %d", i)
			}
			require.False(t, pii.Contains(v), "event %d: %q", i, v)
		}
		require.True(t, m.HasField("latency_ms"), "allowed keys stay")
	}
}

func TestSampleConfigLoads(t *testing.T) {
	t.Setenv("MAILTICK_PII_KEY", "a key of at least thirty-two bytes, for the test")
	plugintest.SampleConfigLoads(t, sampleConfig)
}
