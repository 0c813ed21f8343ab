package piiscrub

import (
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/filter"
	"github.com/influxdata/telegraf/plugins/processors"

	"github.com/mailtick/mailtick/internal/pii"
	"github.com/mailtick/mailtick/plugins/common/box"
)

//go:embed sample.conf
var sampleConfig string

type action uint8

const (
	actKeep action = iota
	actDrop
	actHash
	actEmailDomain
	actIPPrefix
	actRedact
)

var actionNames = map[string]action{
	"keep": actKeep, "drop": actDrop, "hash": actHash,
	"email_domain": actEmailDomain, "ip_prefix": actIPPrefix, "redact": actRedact,
}

// Rule applies one action to the tags and fields it names.
type Rule struct {
	Keys   []string `toml:"keys"`
	Action string   `toml:"action"`
	// email_domain: "drop" the local part, or "hash" it.
	LocalPart string `toml:"local_part"`
	// ip_prefix: prefix lengths kept.
	IPv4Prefix int `toml:"ipv4_prefix"`
	IPv6Prefix int `toml:"ipv6_prefix"`
	// email_domain, ip_prefix: a value that is not an address is "drop"ped,
	// "hash"ed or kept ("keep"); each is counted as invalid.
	OnInvalid string `toml:"on_invalid"`
	// redact: replace addresses with a "placeholder" ([email], [ipv4],
	// [ipv6]) or a "pseudonym" ([email:<hash>] ...).
	RedactWith string `toml:"redact_with"`

	act    action
	filter filter.Filter
}

// PIIScrub pseudonymizes, masks, redacts or drops personal data in tags
// and fields, by key.
type PIIScrub struct {
	Default        string          `toml:"default"`
	HashKey        config.Secret   `toml:"hash_key"`
	HashKeyID      string          `toml:"hash_key_id"`
	HashKeyIDTag   string          `toml:"hash_key_id_tag"`
	HashLength     int             `toml:"hash_length"`
	MaxRedactBytes config.Size     `toml:"max_redact_bytes"`
	LocalPartCase  string          `toml:"local_part_case"`
	Rules          []*Rule         `toml:"rule"`
	Log            telegraf.Logger `toml:"-"`

	foldLocal bool

	def      *Rule            // the rule of keys no rule names
	exact    map[string]*Rule // keys named exactly
	globs    []*Rule          // rules with glob keys, in order
	resolved map[string]*Rule // every key seen, resolved once
	mac      hash.Hash
	in, sum  []byte
	pseudo   func(dst []byte, m pii.Match, text string) []byte
	buf      []byte
	edits    []edit
	slab     box.Slab  // the new values, metric after metric
	last     []lastKey // tags then fields of the last metric, by position
	stats    *stats
}

// edit is one value to replace once the metric's new strings are built.
type edit struct {
	tag        *telegraf.Tag
	field      *telegraf.Field
	start, end int
}

const (
	modeKeep   = "keep"
	modeRedact = "redact"
	modeDrop   = "drop"
	maxCached  = 10000 // distinct key names remembered
	caseFold   = "fold"
	caseKeep   = "keep"
)

func (*PIIScrub) SampleConfig() string {
	return sampleConfig
}

func (p *PIIScrub) Init() error {
	switch p.Default {
	case modeKeep:
		p.def = &Rule{act: actKeep}
	case modeRedact:
		p.def = &Rule{act: actRedact, RedactWith: "placeholder"}
	case modeDrop:
		p.def = &Rule{act: actDrop}
	default:
		return fmt.Errorf("invalid %q value %q: want %q, %q or %q", "default", p.Default, modeKeep, modeRedact, modeDrop)
	}
	if p.HashLength < 8 || p.HashLength > 32 {
		return fmt.Errorf("invalid %q value %d: want 8..32 bytes", "hash_length", p.HashLength)
	}
	switch p.LocalPartCase {
	case caseFold, "":
		p.LocalPartCase = caseFold
		p.foldLocal = true
	case caseKeep:
		p.foldLocal = false
	default:
		return fmt.Errorf("invalid %q value %q: want %q or %q", "local_part_case", p.LocalPartCase, caseFold, caseKeep)
	}
	if p.MaxRedactBytes <= 0 {
		return fmt.Errorf("invalid %q value %d: must be > 0", "max_redact_bytes", p.MaxRedactBytes)
	}
	if p.HashKeyID != "" && p.HashKeyIDTag == "" {
		return fmt.Errorf("invalid %q value %q: must not be empty when hash_key_id is set", "hash_key_id_tag", p.HashKeyIDTag)
	}
	p.exact = make(map[string]*Rule)
	p.resolved = make(map[string]*Rule)
	needsKey := false
	for i, r := range p.Rules {
		if err := r.init(i); err != nil {
			return err
		}
		needsKey = needsKey || r.needsKey()
		for _, k := range r.Keys {
			if strings.ContainsAny(k, "*?[") {
				continue
			}
			if prev, dup := p.exact[k]; dup && prev != r {
				return fmt.Errorf("rule %d: key %q is already named by another rule", i+1, k)
			}
			p.exact[k] = r
		}
		if hasGlob(r.Keys) {
			f, err := filter.Compile(r.Keys)
			if err != nil {
				return fmt.Errorf("rule %d: invalid %q value %q: %w", i+1, "keys", r.Keys, err)
			}
			r.filter = f
			p.globs = append(p.globs, r)
		}
	}
	if needsKey && p.HashKey.Empty() {
		return errors.New(`a rule hashes values but "hash_key" is empty: set it from a secret store or ${ENV}`)
	}
	p.stats = newStats()
	return nil
}

func hasGlob(keys []string) bool {
	for _, k := range keys {
		if strings.ContainsAny(k, "*?[") {
			return true
		}
	}
	return false
}

func (r *Rule) init(i int) error {
	act, ok := actionNames[r.Action]
	if !ok {
		return fmt.Errorf("rule %d: invalid %q value %q: want keep, drop, hash, email_domain, ip_prefix or redact", i+1, "action", r.Action)
	}
	r.act = act
	if len(r.Keys) == 0 {
		return fmt.Errorf("rule %d (%s): %q must name at least one key", i+1, r.Action, "keys")
	}
	if r.LocalPart == "" {
		r.LocalPart = "drop"
	}
	if r.LocalPart != "drop" && r.LocalPart != "hash" {
		return fmt.Errorf("rule %d: invalid %q value %q: want \"drop\" or \"hash\"", i+1, "local_part", r.LocalPart)
	}
	if r.IPv4Prefix == 0 {
		r.IPv4Prefix = pii.MaxIPv4Prefix
	}
	if r.IPv6Prefix == 0 {
		r.IPv6Prefix = pii.MaxIPv6Prefix
	}
	// Longer prefixes would narrow an address to a few hosts: personal data.
	if r.IPv4Prefix < 0 || r.IPv4Prefix > pii.MaxIPv4Prefix {
		return fmt.Errorf("rule %d: invalid %q value %d: want 0..%d", i+1, "ipv4_prefix", r.IPv4Prefix, pii.MaxIPv4Prefix)
	}
	if r.IPv6Prefix < 0 || r.IPv6Prefix > pii.MaxIPv6Prefix {
		return fmt.Errorf("rule %d: invalid %q value %d: want 0..%d", i+1, "ipv6_prefix", r.IPv6Prefix, pii.MaxIPv6Prefix)
	}
	if r.OnInvalid == "" {
		r.OnInvalid = "drop"
	}
	if r.OnInvalid != "drop" && r.OnInvalid != "hash" && r.OnInvalid != "keep" {
		return fmt.Errorf("rule %d: invalid %q value %q: want \"drop\", \"hash\" or \"keep\"", i+1, "on_invalid", r.OnInvalid)
	}
	if r.RedactWith == "" {
		r.RedactWith = "placeholder"
	}
	if r.RedactWith != "placeholder" && r.RedactWith != "pseudonym" {
		return fmt.Errorf("rule %d: invalid %q value %q: want \"placeholder\" or \"pseudonym\"", i+1, "redact_with", r.RedactWith)
	}
	return nil
}

func (r *Rule) needsKey() bool {
	return r.act == actHash || (r.act == actEmailDomain && r.LocalPart == "hash") ||
		(r.act == actRedact && r.RedactWith == "pseudonym") || r.OnInvalid == "hash"
}

// Start builds the keyed hash once; the key is held only inside it.
func (p *PIIScrub) Start(telegraf.Accumulator) error {
	if p.HashKey.Empty() {
		return nil
	}
	key, err := p.HashKey.Get()
	if err != nil {
		return fmt.Errorf("reading %q: %w", "hash_key", err)
	}
	defer key.Destroy()
	if len(key.Bytes()) < 16 {
		return fmt.Errorf("%q is %d bytes: use at least 16 random bytes", "hash_key", len(key.Bytes()))
	}
	p.mac = hmac.New(sha256.New, append([]byte(nil), key.Bytes()...))
	p.pseudo = func(dst []byte, m pii.Match, s string) []byte {
		dst = append(append(append(dst, '['), m.Kind.String()...), ':')
		p.in = pii.Canonical(p.in[:0], s, m, p.foldLocal)
		return append(p.pseudonymOf(dst, p.in), ']')
	}
	return nil
}

func (*PIIScrub) Stop() {}

// Add scrubs each metric as it comes (a streaming processor, so the
// key can be read in Start rather than kept in the plugin's config).
func (p *PIIScrub) Add(m telegraf.Metric, acc telegraf.Accumulator) error {
	p.apply(m)
	acc.AddMetric(m)
	return nil
}

// rule finds the rule of a key. Metrics of one kind list their keys in the
// same order, so the rule at the same position of the last metric is tried
// first: a string compare instead of a map lookup.
func (p *PIIScrub) rule(pos int, key string) *Rule {
	if pos < len(p.last) && p.last[pos].key == key {
		return p.last[pos].rule
	}
	r := p.lookup(key)
	if pos < len(p.last) {
		p.last[pos] = lastKey{key, r}
	} else if pos == len(p.last) && pos < 64 {
		p.last = append(p.last, lastKey{key, r})
	}
	return r
}

type lastKey struct {
	key  string
	rule *Rule
}

func (p *PIIScrub) lookup(key string) *Rule {
	if r, ok := p.resolved[key]; ok {
		return r
	}
	r := p.exact[key]
	if r == nil {
		for _, g := range p.globs {
			if g.filter.Match(key) {
				r = g
				break
			}
		}
	}
	if r == nil {
		r = p.def
	}
	if len(p.resolved) < maxCached {
		p.resolved[key] = r
	}
	return r
}

// apply scrubs one metric. New strings are built in one buffer, copied
// into one string, and handed out as slices of it; the string and the
// boxes of the new field values come from blocks shared by many metrics
// (box.Slab): no allocation of their own.
func (p *PIIScrub) apply(m telegraf.Metric) {
	var c counts
	p.buf = p.buf[:0]
	p.edits = p.edits[:0]
	var tagBuf, fieldBuf [16]string // on the stack for usual metrics
	dropTags, dropFields := tagBuf[:0], fieldBuf[:0]

	pos := 0
	for _, t := range m.TagList() {
		r := p.rule(pos, t.Key)
		pos++
		if r.act == actKeep {
			continue
		}
		start := len(p.buf)
		switch p.scrub(r, t.Value, &c) {
		case outDrop:
			dropTags = append(dropTags, t.Key)
		case outNew:
			p.edits = append(p.edits, edit{tag: t, start: start, end: len(p.buf)})
		}
	}
	for _, f := range m.FieldList() {
		r := p.rule(pos, f.Key)
		pos++
		if r.act == actKeep {
			continue
		}
		if r.act == actDrop {
			dropFields = append(dropFields, f.Key)
			c.dropped++
			continue
		}
		s, ok := f.Value.(string)
		if !ok {
			if r.act == actRedact { // numbers and booleans hold no address
				continue
			}
			dropFields = append(dropFields, f.Key)
			c.invalid[invalidNotString]++
			continue
		}
		start := len(p.buf)
		switch p.scrub(r, s, &c) {
		case outDrop:
			dropFields = append(dropFields, f.Key)
		case outNew:
			p.edits = append(p.edits, edit{field: f, start: start, end: len(p.buf)})
		}
	}

	if len(p.edits) > 0 {
		all := p.slab.String(p.buf)
		for _, e := range p.edits {
			if e.tag != nil {
				e.tag.Value = all[e.start:e.end]
			} else {
				e.field.Value = p.slab.Box(all[e.start:e.end])
			}
		}
	}
	for _, k := range dropTags {
		m.RemoveTag(k)
	}
	for _, k := range dropFields {
		m.RemoveField(k)
	}
	if p.HashKeyID != "" {
		m.AddTag(p.HashKeyIDTag, p.HashKeyID)
	}
	p.stats.add(&c)
}

type outcome uint8

const (
	outSame outcome = iota // leave the value as it is
	outNew                 // p.buf[start:] holds the new value
	outDrop                // remove the key
)

// scrub applies r to one string value, appending a new value to p.buf.
func (p *PIIScrub) scrub(r *Rule, s string, c *counts) outcome {
	switch r.act {
	case actDrop:
		c.dropped++
		return outDrop
	case actHash:
		p.buf = p.pseudonym(p.buf, s)
		c.hashed++
		return outNew
	case actEmailDomain:
		return p.emailDomain(r, s, c)
	case actIPPrefix:
		return p.ipPrefix(r, s, c)
	case actRedact:
		return p.redact(r, s, c)
	}
	return outSame
}

// pseudonym appends the keyed hash of s, or of its canonical form when s
// is one address (so "<Bob@Example.org>" in a field and "bob@example.org"
// inside a text are one sender).
func (p *PIIScrub) pseudonym(dst []byte, s string) []byte {
	if start, end, ok := pii.Plain(s); ok { // most are: canonical already
		p.in = append(p.in[:0], s[start:end]...)
	} else if m, ok := pii.Whole(s); ok {
		p.in = pii.Canonical(p.in[:0], s, m, p.foldLocal)
	} else {
		p.in = append(p.in[:0], s...)
	}
	return p.pseudonymOf(dst, p.in)
}

// pseudonymOf appends HMAC-SHA256 of b, truncated to hash_length bytes,
// base64url without padding.
func (p *PIIScrub) pseudonymOf(dst, b []byte) []byte {
	p.mac.Reset()
	p.mac.Write(b)
	p.sum = p.mac.Sum(p.sum[:0])
	return base64.RawURLEncoding.AppendEncode(dst, p.sum[:p.HashLength])
}

func (p *PIIScrub) invalid(r *Rule, s string, why int, c *counts) outcome {
	c.invalid[why]++
	switch r.OnInvalid {
	case "hash":
		p.buf = p.pseudonym(p.buf, s)
		c.hashed++
		return outNew
	case "keep":
		return outSame
	}
	c.dropped++
	return outDrop
}

// emailDomain keeps the domain of a mailbox, lower-cased; with local_part
// = "hash", prefixed by the pseudonym of the whole address and a dot. A
// mailbox at an IP address (user@[192.0.2.1], user@192.0.2.1) has no
// domain to keep: it is invalid.
func (p *PIIScrub) emailDomain(r *Rule, s string, c *counts) outcome {
	m, ok := pii.Whole(s)
	if !ok || m.Kind != pii.Email {
		return p.invalid(r, s, invalidNotEmail, c)
	}
	domain := s[m.AtEnd:m.End]
	if domain[0] == '[' || pii.Contains(domain) {
		return p.invalid(r, s, invalidIPDomain, c)
	}
	if r.LocalPart == "hash" {
		p.buf = p.pseudonym(p.buf, s)
		p.buf = append(p.buf, '.')
	}
	p.buf = appendLower(p.buf, domain)
	c.masked++
	return outNew
}

// ipPrefix keeps the network of an address (203.0.113.0/24); a port or
// brackets around it are accepted and dropped.
func (p *PIIScrub) ipPrefix(r *Rule, s string, c *counts) outcome {
	if a, ok := dottedQuad(s); ok { // most are: a plain IPv4 address
		p.buf = appendIPv4Prefix(p.buf, a, r.IPv4Prefix)
		c.masked++
		return outNew
	}
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return p.invalid(r, s, invalidNotIP, c)
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	bits := r.IPv6Prefix
	if a.Is4() {
		bits = r.IPv4Prefix
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return p.invalid(r, s, invalidNotIP, c)
	}
	p.buf = pfx.AppendTo(p.buf)
	c.masked++
	return outNew
}

// dottedQuad reads s when it is exactly an IPv4 address as net/netip
// parses it (four decimal octets 0-255, no leading zeros), and nothing
// else; ok=false says nothing about s. FuzzIPPrefix holds the two to the
// same result. rollupfwd's guard reads addresses with its own
// (guardDottedQuad): an independent second check, on purpose.
func dottedQuad(s string) (a [4]byte, ok bool) {
	part, n, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && n == 0 { // a leading zero
				return a, false
			}
			n = n*10 + int(c-'0')
			digits++
			if n > 255 {
				return a, false
			}
		case c == '.' && digits > 0 && part < 3:
			a[part] = byte(n)
			part, n, digits = part+1, 0, 0
		default:
			return a, false
		}
	}
	if part != 3 || digits == 0 {
		return a, false
	}
	a[3] = byte(n)
	return a, true
}

// appendIPv4Prefix appends the network of a with bits bits, as
// netip.Prefix writes it ("203.0.113.0/24").
func appendIPv4Prefix(dst []byte, a [4]byte, bits int) []byte {
	mask := ^uint32(0) << (32 - bits) // 0 for bits 0: Go shifts all out
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) & mask
	for i := 3; i >= 0; i-- {
		dst = strconv.AppendUint(dst, uint64(v>>(8*i)&0xff), 10)
		if i > 0 {
			dst = append(dst, '.')
		}
	}
	return strconv.AppendInt(append(dst, '/'), int64(bits), 10)
}

// redact replaces every address inside free text, keeping the rest.
func (p *PIIScrub) redact(r *Rule, s string, c *counts) outcome {
	changed := false
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		c.invalid[invalidUTF8]++
		changed = true
	}
	if len(s) > int(p.MaxRedactBytes) { // bounded cost: scan and keep a prefix
		// Cut before the token the limit falls in: never half an address.
		s = strings.ToValidUTF8(s[:pii.SafeCut(s, int(p.MaxRedactBytes))], "")
		c.truncated++
		changed = true
	}
	repl := appendPlaceholder
	if r.RedactWith == "pseudonym" {
		repl = p.pseudo
	}
	// One scan: a text without addresses comes back copied and uncounted.
	start, before := len(p.buf), c.redacted
	p.buf = pii.Replace(p.buf, s, repl, &c.redacted)
	if !changed && c.redacted == before {
		p.buf = p.buf[:start]
		return outSame
	}
	return outNew
}

func appendPlaceholder(dst []byte, m pii.Match, _ string) []byte {
	return append(append(append(dst, '['), m.Kind.String()...), ']')
}

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func init() {
	processors.AddStreaming("piiscrub", func() telegraf.StreamingProcessor {
		return &PIIScrub{
			Default:        modeDrop,
			HashKeyIDTag:   "pii_key_id",
			HashLength:     12,
			MaxRedactBytes: config.Size(64 * 1024),
			LocalPartCase:  caseFold,
		}
	})
}
