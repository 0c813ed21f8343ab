package mailwebhooks

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // SNS SignatureVersion 1 is SHA1withRSA; we only check it
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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

// snsVerifier checks SNS signatures against certificates the operator
// gave: files, or certificates fetched once from an address on the
// allowlist (never from an address that is not).
type snsVerifier struct {
	certs      []*x509.Certificate // from sns_certificates
	allowURLs  filter.Filter       // sns_certificate_urls
	topics     map[string]bool     // sns_topic_arns; empty: any topic
	client     *http.Client
	mu         sync.Mutex
	fetched    map[string]*x509.Certificate
	subscribe  string // sns_subscribe: log or confirm
	allowConfs filter.Filter
	log        telegraf.Logger
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
			return nil, fmt.Errorf("sns_certificates %q: %w", f, err)
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

// verify checks the envelope's signature.
func (v *snsVerifier) verify(ctx context.Context, m *snsMessage) error {
	if m.Signature == "" {
		return errNoCredentials
	}
	if len(v.topics) > 0 && !v.topics[m.TopicArn] {
		return fmt.Errorf("%w: topic %q is not in sns_topic_arns", errBadSignature, m.TopicArn)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", errBadSignature)
	}
	var h crypto.Hash
	var digest []byte
	switch m.SignatureVersion {
	case "1":
		sum := sha1.Sum([]byte(m.signedText())) //nolint:gosec // as SNS signs
		h, digest = crypto.SHA1, sum[:]
	case "2":
		sum := sha256.Sum256([]byte(m.signedText()))
		h, digest = crypto.SHA256, sum[:]
	default:
		return fmt.Errorf("%w: SignatureVersion %q", errBadSignature, m.SignatureVersion)
	}
	certs := v.certs
	if c, err := v.fetch(ctx, m.SigningCertURL); err != nil {
		if len(certs) == 0 {
			return err
		}
	} else if c != nil {
		certs = append([]*x509.Certificate{c}, certs...)
	}
	for _, c := range certs {
		if rsa.VerifyPKCS1v15(c.PublicKey.(*rsa.PublicKey), h, digest, sig) == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: sns signature", errBadSignature)
}

// fetch returns the certificate at an allowlisted SigningCertURL, fetched
// once; nil when no allowlist is set.
func (v *snsVerifier) fetch(ctx context.Context, addr string) (*x509.Certificate, error) {
	if v.allowURLs == nil {
		return nil, nil
	}
	if !v.allowURLs.Match(addr) {
		return nil, fmt.Errorf("%w: SigningCertURL %q is not in sns_certificate_urls", errBadSignature, addr)
	}
	v.mu.Lock()
	c, ok := v.fetched[addr]
	v.mu.Unlock()
	if ok {
		return c, nil
	}
	body, err := v.get(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("fetching SigningCertURL: %w", err)
	}
	if c, err = parseCertificate(body); err != nil {
		return nil, fmt.Errorf("%w: SigningCertURL %q: %w", errBadSignature, addr, err)
	}
	v.mu.Lock()
	v.fetched[addr] = c
	v.mu.Unlock()
	return c, nil
}

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
// sns_subscribe = "confirm" visits it when the address is allowed.
func (v *snsVerifier) confirm(ctx context.Context, m *snsMessage) error {
	if m.Type != "SubscriptionConfirmation" {
		v.log.Infof("SNS %s for topic %s", m.Type, m.TopicArn)
		return nil
	}
	if v.subscribe != subscribeConfirm {
		v.log.Infof("SNS asks to confirm the subscription to %s: visit %s (or set sns_subscribe = %q)", m.TopicArn, m.SubscribeURL, subscribeConfirm)
		return nil
	}
	u, err := url.Parse(m.SubscribeURL)
	if err != nil || u.Scheme == "" || !v.allowConfs.Match(m.SubscribeURL) {
		return fmt.Errorf("SubscribeURL %q is not in sns_subscribe_urls", m.SubscribeURL)
	}
	if _, err := v.get(ctx, m.SubscribeURL); err != nil {
		return fmt.Errorf("confirming the subscription to %s: %w", m.TopicArn, err)
	}
	v.log.Infof("Confirmed the SNS subscription to %s", m.TopicArn)
	return nil
}

const (
	subscribeLog     = "log"
	subscribeConfirm = "confirm"
)

func newSNSVerifier(p *Provider, log telegraf.Logger) (*snsVerifier, error) {
	v := &snsVerifier{
		topics:    make(map[string]bool),
		client:    &http.Client{Timeout: 10 * time.Second},
		fetched:   make(map[string]*x509.Certificate),
		subscribe: p.SNSSubscribe,
		log:       log,
	}
	var err error
	if v.certs, err = readCertificates(p.SNSCertificates); err != nil {
		return nil, err
	}
	if len(p.SNSCertificateURLs) > 0 {
		if v.allowURLs, err = filter.Compile(p.SNSCertificateURLs); err != nil {
			return nil, fmt.Errorf("invalid %q value %q: %w", "sns_certificate_urls", p.SNSCertificateURLs, err)
		}
	}
	for _, t := range p.SNSTopicARNs {
		v.topics[t] = true
	}
	switch p.SNSSubscribe {
	case "", subscribeLog:
		v.subscribe = subscribeLog
	case subscribeConfirm:
		if len(p.SNSSubscribeURLs) == 0 {
			return nil, fmt.Errorf("%q = %q needs %q", "sns_subscribe", subscribeConfirm, "sns_subscribe_urls")
		}
		if v.allowConfs, err = filter.Compile(p.SNSSubscribeURLs); err != nil {
			return nil, fmt.Errorf("invalid %q value %q: %w", "sns_subscribe_urls", p.SNSSubscribeURLs, err)
		}
	default:
		return nil, fmt.Errorf("invalid %q value %q: want %q or %q", "sns_subscribe", p.SNSSubscribe, subscribeLog, subscribeConfirm)
	}
	if len(v.certs) == 0 && v.allowURLs == nil {
		return nil, fmt.Errorf("preset %q: set %q or %q (or allow_unsigned = true)", p.Preset, "sns_certificates", "sns_certificate_urls")
	}
	return v, nil
}
