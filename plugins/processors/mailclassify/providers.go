package mailclassify

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mailtick/mailtick/internal/pii"
)

// The mailbox providers a recipient's mail goes to, by the recipient's
// domain and by the host the mail was relayed to. The names are a bounded
// set: rollups are grouped by them, and a company's own domain never
// becomes a value (it is "other"). Sources: each provider's published
// consumer domains and the MX hosts their domains resolve to (Gmail and
// Google Workspace: *.google.com and *.googlemail.com; Outlook.com and
// Microsoft 365: *.protection.outlook.com, *.outlook.com; Yahoo and AOL:
// *.yahoodns.net; iCloud: *.mail.icloud.com; ...), as of 2026.
//
// A domain hosted by one of them (Google Workspace, Microsoft 365) is
// placed by the relay host, where the MTA logs it (Postfix's relay=,
// Mailgun's mx-host): the domain itself is not in the table.
var shippedProviders = []provider{
	{"gmail", []string{"gmail.com", "googlemail.com"}, []string{"google.com", "googlemail.com"}},
	{"microsoft", []string{"outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com", "windowslive.com",
		"hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it", "hotmail.es", "live.co.uk", "live.fr", "live.de",
		"live.it", "live.nl", "outlook.fr", "outlook.de", "outlook.es", "outlook.it"}, []string{"outlook.com", "hotmail.com"}},
	{"yahoo", []string{"yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.it",
		"yahoo.es", "yahoo.ca", "yahoo.com.br", "yahoo.co.in", "yahoo.co.jp"}, []string{"yahoodns.net"}},
	{"aol", []string{"aol.com", "aim.com", "aol.co.uk", "aol.fr", "aol.de"}, nil}, // AOL's MX are Yahoo's: placed by domain only
	{"icloud", []string{"icloud.com", "me.com", "mac.com"}, []string{"mail.icloud.com"}},
	{"gmx", []string{"gmx.de", "gmx.net", "gmx.com", "gmx.at", "gmx.ch", "gmx.fr", "web.de"}, []string{"gmx.net", "web.de"}},
	{"mailru", []string{"mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru"}, []string{"mail.ru"}},
	{"yandex", []string{"yandex.ru", "yandex.com", "ya.ru", "yandex.by", "yandex.kz", "yandex.ua"}, []string{"yandex.net", "yandex.ru"}},
	{"proton", []string{"proton.me", "protonmail.com", "protonmail.ch", "pm.me"}, []string{"protonmail.ch"}},
	{"zoho", []string{"zoho.com", "zohomail.com", "zohomail.eu"}, []string{"zoho.com", "zoho.eu"}},
	{"orange", []string{"orange.fr", "wanadoo.fr"}, []string{"orange.fr"}},
	{"comcast", []string{"comcast.net"}, []string{"comcast.net"}},
	{"qq", []string{"qq.com", "foxmail.com"}, []string{"qq.com"}},
}

type provider struct {
	name    string
	domains []string
	relays  []string // suffixes of the relay host names
}

// otherProvider is the provider of a recipient none of the table's.
const otherProvider = "other"

var providerName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// providerTable finds a recipient's provider.
type providerTable struct {
	domains map[string]string // domain -> provider
	relays  map[string]string // relay host suffix -> provider
}

// newProviderTable is the shipped table, with the configuration's domains
// and relays added or overriding it, one by one.
func newProviderTable(domains, relays map[string]string) (*providerTable, error) {
	t := &providerTable{domains: map[string]string{}, relays: map[string]string{}}
	for _, p := range shippedProviders {
		for _, d := range p.domains {
			t.domains[d] = p.name
		}
		for _, r := range p.relays {
			t.relays[r] = p.name
		}
	}
	for _, o := range []struct {
		option string
		set    map[string]string
		into   map[string]string
	}{{"domains", domains, t.domains}, {"relays", relays, t.relays}} {
		for host, name := range o.set {
			if !providerName.MatchString(name) {
				return nil, fmt.Errorf("invalid %q value %q for %q: a provider name is lower-case letters, digits and _, at most 32", o.option, name, host)
			}
			h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
			if h == "" || strings.ContainsAny(h, " @[]") {
				return nil, fmt.Errorf("invalid %q key %q: want a domain name", o.option, host)
			}
			o.into[h] = name
		}
	}
	return t, nil
}

// provider is the provider of a recipient (an address, or a bare domain)
// and the host its mail was relayed to ("" when not known), or "" when
// there is neither.
func (t *providerTable) provider(recipient, relay string) string {
	if d := domainOf(recipient); d != "" {
		if p := lookupSuffix(t.domains, d); p != "" {
			return p
		}
	}
	if h := relayHost(relay); h != "" {
		if p := lookupSuffix(t.relays, h); p != "" {
			return p
		}
	}
	if recipient == "" && relay == "" {
		return ""
	}
	return otherProvider
}

// lookupSuffix finds host or its closest parent domain in m
// ("mx1.eu.yahoodns.net": "eu.yahoodns.net", then "yahoodns.net").
func lookupSuffix(m map[string]string, host string) string {
	for host != "" {
		if p, ok := m[host]; ok {
			return p
		}
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return ""
		}
		host = host[i+1:]
	}
	return ""
}

// domainOf is the domain of the first e-mail address in addr, as the one
// PII detector (internal/pii) finds it ("Bob <bob@Gmail.com>" →
// "gmail.com"), lower-cased; "" if there is none, or if its domain is an
// IP address (user@[192.0.2.1], user@192.0.2.1): that is personal data,
// not a domain to count by.
func domainOf(addr string) string {
	m, ok := pii.Find(addr, 0)
	if !ok || m.Kind != pii.Email {
		return ""
	}
	d := addr[m.AtEnd:m.End]
	if d == "" || d[0] == '[' || pii.Contains(d) {
		return ""
	}
	return strings.ToLower(d)
}

// relayHost is the host name of a relay as MTAs log it:
// "gmail-smtp-in.l.google.com[142.250.102.27]:25" (Postfix),
// "mx.example.net" (Mailgun's mx-host), "none" or "local" (Postfix, not
// relayed): "".
func relayHost(relay string) string {
	h := relay
	if i := strings.IndexByte(h, '['); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if !strings.Contains(h, ".") {
		return ""
	}
	return h
}
