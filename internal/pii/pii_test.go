package pii

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/pii/piitest"
)

type found struct {
	text string
	kind Kind
}

func findAll(s string) []found {
	var out []found
	for m, ok := Find(s, 0); ok; m, ok = Find(s, m.End) {
		out = append(out, found{s[m.Start:m.End], m.Kind})
	}
	return out
}

// The corpus: valid, tricky and invalid cases, as they appear in SMTP
// replies and mail logs.
func TestFind(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []found
	}{
		{"plain mailbox", "from alice@example.com ok", []found{{"alice@example.com", Email}}},
		{"angle brackets in an SMTP reply", "550 5.1.1 <bob@x.org>: Recipient address rejected", []found{{"bob@x.org", Email}}},
		{"plus tag and dots", "to first.last+news@mail.example.co.uk.", []found{{"first.last+news@mail.example.co.uk", Email}}},
		{"quoted local part", `"john doe"@example.org said`, []found{{`"john doe"@example.org`, Email}}},
		{"atext specials", "o'brien.co+1@example.net", []found{{"o'brien.co+1@example.net", Email}}},
		// Lists and URLs: = & ? / | end what comes before the address.
		{"list joined by |", "rcpts=ann@x.org|ben@x.org|cat@x.org", []found{{"ann@x.org", Email}, {"ben@x.org", Email}, {"cat@x.org", Email}}},
		{"mailto cc and bcc", "mailto:ann@x.org?cc=ben@x.org&bcc=cat@x.org", []found{{"ann@x.org", Email}, {"ben@x.org", Email}, {"cat@x.org", Email}}},
		{"list joined by /", "ann@x.org/ben@x.org", []found{{"ann@x.org", Email}, {"ben@x.org", Email}}},
		{"key=value is not the local part", "to=xena@example.com sasl_username=hugo@example.org", []found{{"xena@example.com", Email}, {"hugo@example.org", Email}}},
		{"percent-encoded list separator", "e=mia%40x.org%7Cben%40x.org", []found{{"mia%40x.org", Email}, {"ben%40x.org", Email}}},
		// Encoded at-signs.
		{"percent-encoded", "u=mia%40example.com&x=1", []found{{"mia%40example.com", Email}}},
		{"percent-encoded plus tag", "u=nina%2Btag%40example.org", []found{{"nina%2Btag%40example.org", Email}}},
		{"double-encoded", "e%3Dolga%2540example.org", []found{{"olga%2540example.org", Email}}},
		{"HTML references", "pete&#64;example.com quentin&#x40;example.com", []found{{"pete&#64;example.com", Email}, {"quentin&#x40;example.com", Email}}},
		{"JSON escape", `"ursula\u0040example.com"`, []found{{`ursula\u0040example.com`, Email}}},
		{"fullwidth at", "rita＠example.com", []found{{"rita＠example.com", Email}}},
		{"punycode TLDs", "leo@xn--e1afmkfd.xn--p1ai mei@example.xn--fiqs8s", []found{{"leo@xn--e1afmkfd.xn--p1ai", Email}, {"mei@example.xn--fiqs8s", Email}}},
		{"bare IPv4 domain", "from lou@203.0.113.12", []found{{"lou@203.0.113.12", Email}}},
		{"IDN domain", "jörg@bücher.de", []found{{"jörg@bücher.de", Email}}},
		{"IP literal domain", "postmaster@[192.0.2.1]", []found{{"postmaster@[192.0.2.1]", Email}}},
		{"IPv6 literal domain", "postmaster@[IPv6:2001:db8::1]", []found{{"postmaster@[IPv6:2001:db8::1]", Email}}},
		{"mailbox starting with digits", "1234@example.com", []found{{"1234@example.com", Email}}},
		{"no domain dot", "user@localhost here", nil},
		{"numeric tld", "user@1.2 here", nil},
		{"at sign alone", "a @ b, @home, x@, @y.org", nil},
		{"leading dot", ".alice@example.com", []found{{"alice@example.com", Email}}},
		{"trailing dot local part", "alice.@example.com", nil},
		// Quoted local parts with escapes (RFC 5321 quoted-pairSMTP): the
		// opening quote is the nearest one no backslash escapes.
		{"quoted with an escaped quote", `<"ivy\"q"@example.org>`, []found{{`"ivy\"q"@example.org`, Email}}},
		{"quoted with an escaped backslash", `"kim\\"@example.org`, []found{{`"kim\\"@example.org`, Email}}},
		{"quoted with an escaped space", `"lea\ moss"@example.org`, []found{{`"lea\ moss"@example.org`, Email}}},
		{"quoted with an escaped at-sign", `"max\@home"@example.org`, []found{{`"max\@home"@example.org`, Email}}},
		{"quoted, escaped again in JSON", `{"to":"\"oda\\\"q\"@example.org"}`, []found{{`"\"oda\\\"q\"@example.org`, Email}}},
		{"quoted in JSON without its string's quotes", `\"oda\\\"q\"@example.org`, []found{{`"oda\\\"q\"@example.org`, Email}}},
		{"empty quoted local part", `""@example.org`, nil},
		// Users at unbracketed IPv6 hosts, as ssh and IMAP logs write them.
		{"user at IPv6 compressed", "wanda@2001:db8::9's password:", []found{{"wanda@2001:db8::9", Email}}},
		{"user at IPv6 full", "xavi@2001:0db8:0000:0000:0000:0000:0000:0009,", []found{{"xavi@2001:0db8:0000:0000:0000:0000:0000:0009", Email}}},
		{"user at IPv6 with zone", "yann@fe80::1%eth0 failed", []found{{"yann@fe80::1%eth0", Email}}},
		{"user at IPv4-mapped IPv6", "zelda@::ffff:192.0.2.9", []found{{"zelda@::ffff:192.0.2.9", Email}}},
		{"user at IPv6 loopback, sentence end", "abe@::1.", []found{{"abe@::1", Email}}},
		{"user at tagged IPv6", "<bea@IPv6:2001:db8::a>", []found{{"bea@IPv6:2001:db8::a", Email}}},
		{"user at a clock time is no mailbox", "bob@12:30 here", nil},

		{"IPv4", "client [203.0.113.7] blocked", []found{{"203.0.113.7", IPv4}}},
		{"IPv4 with port", "connect to 198.51.100.25:25 refused", []found{{"198.51.100.25", IPv4}}},
		{"IPv4 at sentence end", "from 192.0.2.1.", []found{{"192.0.2.1", IPv4}}},
		{"version string", "postfix 1.2.3.4.5 and 10.0.0.1.2", nil},
		{"octet out of range", "999.1.1.1 and 1.2.3.256", nil},
		{"too few octets", "quota 1.2.3 exceeded, status 5.1.1", nil},
		{"date and time", "2026-11-22 14:00:00 and 2026.11.22", nil},
		{"long number", "1.2.3.45678", nil},
		{"digits glued to letters", "mx12.dc3 v1.2.3.4", nil},

		{"IPv6 compressed", "from 2001:db8::1 ok", []found{{"2001:db8::1", IPv6}}},
		{"IPv6 full", "2001:0db8:0000:0000:0000:ff00:0042:8329", []found{{"2001:0db8:0000:0000:0000:ff00:0042:8329", IPv6}}},
		{"IPv6 with zone", "fe80::1%eth0 link", []found{{"fe80::1%eth0", IPv6}}},
		{"IPv4-mapped", "::ffff:192.0.2.1 mapped", []found{{"::ffff:192.0.2.1", IPv6}}},
		{"IPv6 in brackets with port", "[2001:db8::25]:587", []found{{"2001:db8::25", IPv6}}},
		{"loopback at sentence end", "bound to ::1.", []found{{"::1", IPv6}}},
		{"clock times are not addresses", "at 12:30 and 12:30:45", nil},
		{"MAC address", "00:1a:2b:3c:4d:5e", nil},

		{"networks are not addresses", "from 203.0.113.0/24 and 2001:db8:1::/48", nil},
		{"a host with a prefix is a host", "inet 203.0.113.45/24 and 198.51.100.77/0 and 2001:db8::5/48",
			[]found{{"203.0.113.45", IPv4}, {"198.51.100.77", IPv4}, {"2001:db8::5", IPv6}}},
		{"IPv6 after a colon, starting with a letter", "[IPv6:fd00:abcd::17] ip:fd00::beef",
			[]found{{"fd00:abcd::17", IPv6}, {"fd00::beef", IPv6}}},
		{"narrow networks are", "host 203.0.113.7/32 and 2001:db8::1/128",
			[]found{{"203.0.113.7", IPv4}, {"2001:db8::1", IPv6}}},
		{"several", "<a@b.org> from 203.0.113.9 via 2001:db8::7",
			[]found{{"a@b.org", Email}, {"203.0.113.9", IPv4}, {"2001:db8::7", IPv6}}},
		{"nothing", "250 2.0.0 Ok: queued as 4F2A1C0D3B", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, findAll(tt.in))
			require.Equal(t, tt.want != nil, Contains(tt.in))
		})
	}
}

func placeholder(dst []byte, m Match, _ string) []byte {
	return append(append(append(dst, '['), m.Kind.String()...), ']')
}

func TestReplace(t *testing.T) {
	var counts [4]int
	out := Replace(nil, "550 <bob@x.org> from [203.0.113.7] via 2001:db8::1", placeholder, &counts)
	require.Equal(t, "550 <[email]> from [[ipv4]] via [ipv6]", string(out))
	require.Equal(t, [4]int{0, 1, 1, 1}, counts)

	// Leftovers that form a new address are caught by the rescan.
	out = Replace(nil, "a@b.co@c.org", placeholder, nil)
	require.False(t, Contains(string(out)), "%q", out)
}

// Every address of the public mail-text corpus is found: redaction leaves
// none of it.
func TestReplaceCorpus(t *testing.T) {
	for _, c := range piitest.Corpus() {
		t.Run(c.Source, func(t *testing.T) {
			out := string(Replace(nil, c.Text, placeholder, nil))
			require.Empty(t, piitest.Leftover(out, c.Secrets), "redacted: %q", out)
			require.False(t, Contains(out), "%q", out)
		})
	}
}

func TestCanonical(t *testing.T) {
	forms := []string{"bob@example.org", "Bob@Example.ORG", "<BOB@example.org>", "bob%40example.org", "bob&#64;EXAMPLE.org", "bob＠example.org", "BOB%2540example.org"}
	for _, f := range forms {
		m, ok := Whole(f)
		require.True(t, ok, f)
		require.Equal(t, "bob@example.org", string(Canonical(nil, f, m, true)), f)
	}
	m, _ := Whole("Bob@Example.ORG")
	require.Equal(t, "Bob@example.org", string(Canonical(nil, "Bob@Example.ORG", m, false)), "the domain is folded always")
	m, _ = Whole("nina%2Btag@x.org")
	require.Equal(t, "nina+tag@x.org", string(Canonical(nil, "nina%2Btag@x.org", m, true)))
	m, _ = Whole("::ffff:192.0.2.1")
	require.Equal(t, "192.0.2.1", string(Canonical(nil, "::ffff:192.0.2.1", m, true)))
	_, ok := Whole("to=bob@example.org")
	require.False(t, ok, "more than the address")
}

func TestSafeCut(t *testing.T) {
	s := "550 <zoe.quinn@example.com> rejected"
	for n := 0; n <= len(s); n++ {
		cut := s[:SafeCut(s, n)]
		require.LessOrEqual(t, len(cut), n)
		if n >= len("550 <zoe.quinn@example.com>") {
			require.Contains(t, cut, "zoe.quinn@example.com")
			break
		}
		require.NotContains(t, cut, "zoe", "cut at %d: %q", n, cut)
	}
}

func FuzzReplace(f *testing.F) {
	for _, s := range []string{
		"550 5.1.1 <bob@x.org>: rejected", "from 203.0.113.7:25", "2001:db8::1%eth0.",
		`"a b"@c.de`, "a@b.co@c.org", "1.2.3.4.5", "::ffff:1.2.3.4", "x@[1.2.3.4]",
		// Found only once the IPv4 before it is replaced: "[ipv4]::1".
		"from 1.2.3.4::1 ok",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(Replace(nil, s, placeholder, nil))
		if m, ok := Find(out, 0); ok {
			t.Fatalf("redacted %q still holds %s %q: %q", s, m.Kind, out[m.Start:m.End], out)
		}
		if !Contains(s) && out != s {
			t.Fatalf("text without addresses changed: %q -> %q", s, out)
		}
	})
}

func BenchmarkFind(b *testing.B) {
	texts := map[string]string{
		"reply_with_pii": "550 5.1.1 <rcpt7805@example45.org>: Recipient address rejected: User unknown",
		"reply_clean":    "250 2.0.0 Ok: queued as 4F2A1C0D3B",
		"long_clean":     strings.Repeat("the quick brown fox jumps over the lazy dog 12:30 ", 40),
	}
	// What a regular expression would do instead (Go's RE2: linear, no
	// backtracking), for the comparison in the README.
	re := regexp.MustCompile(`[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|` +
		`\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b|` +
		`[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}`)
	for name, s := range texts {
		b.Run("pii/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				Contains(s)
			}
		})
		b.Run("regexp/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				re.MatchString(s)
			}
		})
	}
}

// FuzzPlain: what Plain takes is an address Whole finds whole, whose
// canonical form is itself.
func FuzzPlain(f *testing.F) {
	for _, s := range []string{
		"sender218@example24.org", "<8c0072123dfccc22@mail.example.com>", "rcpt5900+news@example80.org",
		"a.b-c_d@x-y.example", "1.2.3.4@x.org", "a+1.2.3.4@y.org", "1.2.3.4.5@x.org", "-@-.org", "a@x.12",
		"a..b@x.org", ".a@x.org", "a.@x.org", "a@.x.org", "a@x..org", "a@x.org.", "Bob@example.org",
		"a@b@c.org", "<a@x.org", "a@xyz", "a@x.org>", "<>", "@x.org",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok := Plain(s)
		if !ok {
			return
		}
		m, whole := Whole(s)
		if !whole || m.Kind != Email || m.Start != start || m.End != end {
			t.Fatalf("Plain(%q) = [%d:%d], Whole = %+v %v", s, start, end, m, whole)
		}
		for _, fold := range []bool{true, false} {
			if c := string(Canonical(nil, s, m, fold)); c != s[start:end] {
				t.Fatalf("Plain(%q): canonical form %q (fold %v)", s, c, fold)
			}
		}
	})
}

func TestPlain(t *testing.T) {
	for s, want := range map[string]bool{
		"sender218@example24.org": true, "<8c0072123dfccc22@mail.example.com>": true, "rcpt5900+news@example80.org": true,
		"a+1.2.3.4@y.org": true, "Bob@example.org": false, "a@x.12": false, "a..b@x.org": false, "a@xyz": false,
		"a@b@c.org": false, "<a@x.org": false, "a%40b@x.org": false, "a@x.org ": false,
	} {
		_, _, ok := Plain(s)
		require.Equal(t, want, ok, "%q", s)
	}
}
