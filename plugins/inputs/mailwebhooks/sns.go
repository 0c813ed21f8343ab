package mailwebhooks

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	_ "crypto/sha1" //nolint:gosec // SNS SignatureVersion 1 is SHA1withRSA (crypto.SHA1); we only check it
	_ "crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
)

// snsMessage is the envelope Amazon SNS POSTs to HTTP(S) subscribers.
type snsMessage struct {
	Type             string
	MessageID        string `json:"MessageId"`
	Token            string
	TopicArn         string
	Subject          string
	Message          string
	SubscribeURL     string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string
}

// signedText is the text SNS signs: name and value of each signed key on
// its own line, in this order, Subject only when present.
func (m *snsMessage) signedText() string {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	add("Message", m.Message)
	add("MessageId", m.MessageID)
	if m.Type == "Notification" {
		if m.Subject != "" {
			add("Subject", m.Subject)
		}
	} else {
		add("SubscribeURL", m.SubscribeURL)
	}
	add("Timestamp", m.Timestamp)
	if m.Type != "Notification" {
		add("Token", m.Token)
	}
	add("TopicArn", m.TopicArn)
	add("Type", m.Type)
	return b.String()
}

// parseEnvelope reads an SNS envelope strictly: a JSON object whose keys
// are each named once (in any case: encoding/json would read "message"
// into Message too, and the last of two wins), the keys SNS signs read
// only as SNS spells them, and their values strings.
func parseEnvelope(body []byte) (*snsMessage, error) {
	m := new(snsMessage)
	fields := map[string]*string{
		"Type": &m.Type, "MessageId": &m.MessageID, "Token": &m.Token, "TopicArn": &m.TopicArn,
		"Subject": &m.Subject, "Message": &m.Message, "SubscribeURL": &m.SubscribeURL,
		"Timestamp": &m.Timestamp, "SignatureVersion": &m.SignatureVersion, "Signature": &m.Signature,
		"SigningCertURL": &m.SigningCertURL,
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errNoCredentials // not an envelope: nothing signed
	}
	seen := make(map[string]bool)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errMalformed, err)
		}
		k, _ := t.(string)
		if seen[strings.ToLower(k)] {
			return nil, fmt.Errorf("%w: key %q named twice", errMalformed, k)
		}
		seen[strings.ToLower(k)] = true
		var skip json.RawMessage
		var into any = &skip
		if f, ok := fields[k]; ok {
			into = f
		}
		if err := dec.Decode(into); err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", errMalformed, k, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the envelope", errMalformed)
	}
	if m.Type == "" {
		return nil, errNoCredentials
	}
	return m, nil
}

// Where SNS signing certificates and subscription confirmations live, as
// AWS's own message validators check them (sns.<region>.amazonaws.com,
// .amazonaws.com.cn in China).
var (
	snsHost     = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)
	snsCertPath = regexp.MustCompile(`^/SimpleNotificationService-[0-9a-fA-F]+\.pem$`)
)

// snsURL parses an address an SNS message names and refuses it unless it
// is https, on an SNS endpoint's host, with no user info and no port.
func snsURL(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	switch {
	case err != nil:
		return nil, err
	case u.Scheme != "https":
		return nil, errors.New("not https")
	case u.User != nil:
		return nil, errors.New("has user info")
	case !snsHost.MatchString(u.Host):
		return nil, fmt.Errorf("host %q is not sns.<region>.amazonaws.com[.cn] without a port", u.Host)
	}
	return u, nil
}

// certURL returns a SigningCertURL as fetched and remembered, or why it
// is refused: the path must be /SimpleNotificationService-<hex>.pem, with
// no query (a new query each time would be a new fetch each time).
func certURL(addr string) (string, error) {
	u, err := snsURL(addr)
	if err != nil {
		return "", err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || !snsCertPath.MatchString(u.EscapedPath()) {
		return "", errors.New("not /SimpleNotificationService-<hex>.pem without a query")
	}
	return u.String(), nil
}

const (
	certFetchTimeout = 5 * time.Second
	certRetryAfter   = 30 * time.Second // a failed fetch is answered from memory this long
	maxCertificates  = 64               // addresses remembered, fetched or failed
)

// snsVerifier checks SNS envelopes: the topic, the signature against the
// certificates the operator gave (files, or certificates fetched from
// SNS's own addresses on the allowlist), the Timestamp's age and the
// MessageId's novelty.
type snsVerifier struct {
	certs      []*x509.Certificate // sns_certificates
	allowURLs  filter.Filter       // sns_certificate_urls
	topics     map[string]bool     // sns_topic_arns
	versions   map[string]crypto.Hash
	replay     *replay
	client     *http.Client
	mu         sync.Mutex
	fetched    map[string]fetched // by canonical SigningCertURL
	fetching   sync.Mutex         // one fetch at a time; others are answered 503
	subscribe  string             // sns_subscribe: log or confirm
	allowConfs filter.Filter
	log        telegraf.Logger
}

// fetched is what a fetch gave, and when: a certificate, or nil.
type fetched struct {
	cert *x509.Certificate
	at   time.Time
}

func (v *snsVerifier) signed() bool { return v.certs != nil || v.allowURLs != nil }

// verifier checks what SNS signs; unsigned (allow_unsigned), it only
// reads envelopes and logs subscription messages.
func (v *snsVerifier) verifier() verifier {
	if !v.signed() {
		return verifier{body: v.body}
	}
	return verifier{head: v.head, body: v.body}
}

// head refuses, before the body is read, a request without SNS's headers
// or from a topic not in sns_topic_arns; the body's signed TopicArn is
// checked again.
func (v *snsVerifier) head(r *http.Request, _ time.Time) error {
	topic := r.Header.Get("X-Amz-Sns-Topic-Arn")
	if topic == "" || r.Header.Get("X-Amz-Sns-Message-Type") == "" {
		return errNoCredentials
	}
	if !v.topics[topic] {
		return fmt.Errorf("%w: topic %q is not in sns_topic_arns", errBadSignature, topic)
	}
	return nil
}

// body verifies the envelope. The events are decoded from exactly what
// was verified, encoded again: never from the request's body, which
// another parser could read otherwise.
func (v *snsVerifier) body(r *http.Request, body []byte, now time.Time) ([]byte, func(), error) {
	m, err := parseEnvelope(body)
	if err != nil {
		return nil, nil, err
	}
	var release func()
	if v.signed() {
		if release, err = v.verify(r.Context(), m, now); err != nil {
			return nil, nil, err
		}
	}
	if m.Type == "Notification" {
		out, err := json.Marshal(m)
		return out, release, err
	}
	if err := v.confirm(r.Context(), m); err != nil {
		v.log.Errorf("%v", err)
	}
	return nil, release, nil
}

// verify checks the envelope's signature, topic and age, and reserves its
// MessageId.
func (v *snsVerifier) verify(ctx context.Context, m *snsMessage, now time.Time) (func(), error) {
	if m.Signature == "" {
		return nil, errNoCredentials
	}
	switch m.Type {
	case "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation":
	default:
		return nil, fmt.Errorf("%w: Type %q", errBadSignature, m.Type)
	}
	if !v.topics[m.TopicArn] {
		return nil, fmt.Errorf("%w: topic %q is not in sns_topic_arns", errBadSignature, m.TopicArn)
	}
	h, ok := v.versions[m.SignatureVersion]
	if !ok {
		return nil, fmt.Errorf("%w: SignatureVersion %q is not in sns_signature_versions", errBadSignature, m.SignatureVersion)
	}
	signed, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("%w: Timestamp %q", errBadSignature, m.Timestamp)
	}
	if err := v.replay.fresh(signed, now, "Timestamp"); err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64", errBadSignature)
	}
	certs, err := v.certificates(ctx, m.SigningCertURL)
	if err != nil {
		return nil, err
	}
	hash := h.New()
	hash.Write([]byte(m.signedText()))
	digest := hash.Sum(nil)
	for _, c := range certs {
		if rsa.VerifyPKCS1v15(c.PublicKey.(*rsa.PublicKey), h, digest, sig) == nil {
			return v.replay.reserve("SNS MessageId "+m.MessageID, signed, now)
		}
	}
	return nil, fmt.Errorf("%w: sns signature", errBadSignature)
}

// certificates returns the certificates to check a message against: the
// one its SigningCertURL names, when sns_certificate_urls allows it, and
// the files.
func (v *snsVerifier) certificates(ctx context.Context, addr string) ([]*x509.Certificate, error) {
	if v.allowURLs == nil {
		return v.certs, nil
	}
	c, err := v.fetch(ctx, addr)
	if err != nil {
		if len(v.certs) == 0 {
			return nil, err
		}
		return v.certs, nil
	}
	return append([]*x509.Certificate{c}, v.certs...), nil
}

// fetch returns the certificate at an allowed SigningCertURL, fetched
// once and kept; a failed fetch is answered from memory for
// certRetryAfter, and while one fetch runs, no other starts.
func (v *snsVerifier) fetch(ctx context.Context, addr string) (*x509.Certificate, error) {
	u, err := certURL(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: SigningCertURL %q: %v", errBadSignature, addr, err)
	}
	if !v.allowURLs.Match(u) {
		return nil, fmt.Errorf("%w: SigningCertURL %q is not in sns_certificate_urls", errBadSignature, u)
	}
	remembered := func() (*x509.Certificate, bool, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		f, ok := v.fetched[u]
		switch {
		case !ok || f.cert == nil && time.Since(f.at) >= certRetryAfter:
			return nil, false, nil
		case f.cert == nil:
			return nil, true, fmt.Errorf("%w: %s failed less than %s ago", errCertificate, u, certRetryAfter)
		}
		return f.cert, true, nil
	}
	if c, ok, err := remembered(); ok {
		return c, err
	}
	if !v.fetching.TryLock() {
		return nil, errFetchBusy
	}
	defer v.fetching.Unlock()
	if c, ok, err := remembered(); ok { // fetched while this request waited
		return c, err
	}
	var c *x509.Certificate
	body, err := v.get(ctx, u)
	if err == nil {
		c, err = parseCertificate(body)
	}
	v.remember(u, fetched{cert: c, at: time.Now()})
	if err != nil {
		v.log.Warnf("Fetching the SNS signing certificate %s: %v (tried again in %s at the earliest)", u, err, certRetryAfter)
		return nil, fmt.Errorf("%w: %s: %v", errCertificate, u, err)
	}
	return c, nil
}

// remember keeps what a fetch gave, at most maxCertificates addresses: a
// failure is forgotten first.
func (v *snsVerifier) remember(u string, f fetched) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.fetched[u]; !ok && len(v.fetched) >= maxCertificates {
		var victim string
		for k, old := range v.fetched {
			victim = k
			if old.cert == nil {
				break
			}
		}
		delete(v.fetched, victim)
	}
	v.fetched[u] = f
}

// get fetches an SNS address: no redirect followed, 64 KiB at most.
func (v *snsVerifier) get(ctx context.Context, addr string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}

// confirm handles a verified SubscriptionConfirmation or
// UnsubscribeConfirmation: it logs the SubscribeURL, and with
// sns_subscribe = "confirm" visits it when it is SNS's and allowed.
func (v *snsVerifier) confirm(ctx context.Context, m *snsMessage) error {
	if m.Type != "SubscriptionConfirmation" {
		v.log.Infof("SNS %s for topic %s", m.Type, m.TopicArn)
		return nil
	}
	if v.subscribe != subscribeConfirm {
		v.log.Infof("SNS asks to confirm the subscription to %s: visit %s (or set sns_subscribe = %q)", m.TopicArn, m.SubscribeURL, subscribeConfirm)
		return nil
	}
	u, err := snsURL(m.SubscribeURL)
	if err != nil || u.Query().Get("Action") != "ConfirmSubscription" || !v.allowConfs.Match(u.String()) {
		return fmt.Errorf("SubscribeURL %q is not an SNS ConfirmSubscription address in sns_subscribe_urls", m.SubscribeURL)
	}
	if _, err := v.get(ctx, u.String()); err != nil {
		return fmt.Errorf("confirming the subscription to %s: %w", m.TopicArn, err)
	}
	v.log.Infof("Confirmed the SNS subscription to %s", m.TopicArn)
	return nil
}

const (
	subscribeLog     = "log"
	subscribeConfirm = "confirm"
)

var signatureVersions = map[string]crypto.Hash{"1": crypto.SHA1, "2": crypto.SHA256}

// newSNSVerifier checks the sns_ options. Unsigned (allow_unsigned), it
// reads envelopes and only logs subscription messages.
func newSNSVerifier(p *Provider, rp *replay, log telegraf.Logger) (*snsVerifier, error) {
	v := &snsVerifier{
		topics:  make(map[string]bool),
		replay:  rp,
		fetched: make(map[string]fetched),
		client: &http.Client{
			Timeout:       certFetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		subscribe: subscribeLog,
		log:       log,
	}
	if p.AllowUnsigned {
		return v, nil
	}
	var err error
	if v.certs, err = readCertificates(p.SNSCertificates); err != nil {
		return nil, err
	}
	if v.allowURLs, err = snsPatterns("sns_certificate_urls", p.SNSCertificateURLs); err != nil {
		return nil, err
	}
	if len(v.certs) == 0 && v.allowURLs == nil {
		return nil, fmt.Errorf("preset %q: set %q or %q (or allow_unsigned = true)", p.Preset, "sns_certificates", "sns_certificate_urls")
	}
	if len(p.SNSTopicARNs) == 0 {
		return nil, fmt.Errorf("preset %q: set %q, the topics whose messages are accepted (every AWS account's topics are signed with the same certificates)", p.Preset, "sns_topic_arns")
	}
	for _, t := range p.SNSTopicARNs {
		if !strings.HasPrefix(t, "arn:") || !strings.Contains(t, ":sns:") {
			return nil, fmt.Errorf("invalid %q value %q: want arn:aws:sns:<region>:<account>:<topic>", "sns_topic_arns", t)
		}
		v.topics[t] = true
	}
	versions := p.SNSSignatureVersions
	if len(versions) == 0 {
		versions = []string{"1", "2"}
	}
	v.versions = make(map[string]crypto.Hash)
	for _, s := range versions {
		h, ok := signatureVersions[s]
		if !ok {
			return nil, fmt.Errorf("invalid %q value %q: want \"1\" (SHA1) or \"2\" (SHA256)", "sns_signature_versions", s)
		}
		v.versions[s] = h
	}
	switch p.SNSSubscribe {
	case "", subscribeLog:
	case subscribeConfirm:
		if len(p.SNSSubscribeURLs) == 0 {
			return nil, fmt.Errorf("%q = %q needs %q", "sns_subscribe", subscribeConfirm, "sns_subscribe_urls")
		}
		if v.allowConfs, err = snsPatterns("sns_subscribe_urls", p.SNSSubscribeURLs); err != nil {
			return nil, err
		}
		v.subscribe = subscribeConfirm
	default:
		return nil, fmt.Errorf("invalid %q value %q: want %q or %q", "sns_subscribe", p.SNSSubscribe, subscribeLog, subscribeConfirm)
	}
	return v, nil
}

// snsPatterns compiles an allowlist of SNS addresses: globs in which *
// does not cross a /, each naming an SNS endpoint. What a message names
// must also pass snsURL: the globs only narrow it (to regions, say).
func snsPatterns(option string, patterns []string) (filter.Filter, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	for _, p := range patterns {
		if !strings.HasPrefix(p, "https://sns.") {
			return nil, fmt.Errorf("invalid %q value %q: SNS addresses are https://sns.<region>.amazonaws.com[.cn]/...", option, p)
		}
	}
	f, err := filter.Compile(patterns, '/')
	if err != nil {
		return nil, fmt.Errorf("invalid %q value %q: %w", option, patterns, err)
	}
	return f, nil
}

func readCertificates(files []string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("sns_certificates: %w", err)
		}
		c, err := parseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("invalid %q value %q: %w", "sns_certificates", f, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func parseCertificate(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("not an RSA certificate")
	}
	return c, nil
}
