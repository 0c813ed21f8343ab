package mailwebhooks

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Mandrill signs with HMAC-SHA1; we only check it
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Why a request is refused before its events are read. Missing
// credentials answer 401, wrong ones 403; both count as
// signature_failures with this reason.
var (
	errNoCredentials = errors.New("no credentials")
	errBadSignature  = errors.New("bad signature")
	errReplay        = errors.New("replayed or stale request")
)

// verifier checks what a provider signs. It returns the body to decode
// (the same, unless the signature is inside it) and a commit function to
// call once the request was answered 2xx (Mailgun's token cache), or an
// error: errNoCredentials or a wrapped errBadSignature / errReplay.
type verifier func(r *http.Request, body []byte, now time.Time) (commit func(), err error)

// basicAuth checks HTTP basic authentication (Postmark, SparkPost, and any
// provider with username set).
func basicAuth(user string, pass []byte) verifier {
	return func(r *http.Request, _ []byte, _ time.Time) (func(), error) {
		u, p, ok := r.BasicAuth()
		if !ok {
			return nil, errNoCredentials
		}
		userOK := subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(p), pass) == 1
		if !userOK || !passOK {
			return nil, fmt.Errorf("%w: basic auth", errBadSignature)
		}
		return nil, nil
	}
}

// within tells whether a signed time is no further from now than window.
func within(signed, now time.Time, window time.Duration) bool {
	d := now.Sub(signed)
	return window <= 0 || (d <= window && d >= -window)
}

// tokenCache remembers the Mailgun tokens of requests answered 2xx for
// the replay window, so that a captured request cannot be played again.
type tokenCache struct {
	mu     sync.Mutex
	window time.Duration
	seen   map[string]time.Time // token -> its signed time
}

func (c *tokenCache) has(token string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[token]
	return ok
}

func (c *tokenCache) add(token string, signed, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, at := range c.seen {
		if !within(at, now, c.window) {
			delete(c.seen, t)
		}
	}
	c.seen[token] = signed
}

// mailgun checks Mailgun's signature: HMAC-SHA256 of timestamp+token with
// the webhook signing key, hex encoded, inside the JSON body. The
// timestamp must be within the replay window and the token not seen
// before; a token is remembered only once its request was answered 2xx,
// so that a provider retrying after a 5xx is not taken for a replay.
func mailgun(key []byte, window time.Duration) verifier {
	cache := &tokenCache{window: window, seen: make(map[string]time.Time)}
	return func(_ *http.Request, body []byte, now time.Time) (func(), error) {
		var env struct {
			Signature *struct {
				Timestamp string `json:"timestamp"`
				Token     string `json:"token"`
				Signature string `json:"signature"`
			} `json:"signature"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Signature == nil || env.Signature.Signature == "" {
			return nil, errNoCredentials
		}
		s := env.Signature
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(s.Timestamp + s.Token))
		got, err := hex.DecodeString(s.Signature)
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			return nil, fmt.Errorf("%w: mailgun HMAC", errBadSignature)
		}
		sec, err := strconv.ParseInt(s.Timestamp, 10, 64)
		if err != nil || !within(time.Unix(sec, 0), now, window) {
			return nil, fmt.Errorf("%w: timestamp %q outside replay_window %s", errReplay, s.Timestamp, window)
		}
		if cache.has(s.Token) {
			return nil, fmt.Errorf("%w: token seen before", errReplay)
		}
		return func() { cache.add(s.Token, time.Unix(sec, 0), now) }, nil
	}
}

// SendGrid's signed event webhook headers.
const (
	sendgridSignature = "X-Twilio-Email-Event-Webhook-Signature"
	sendgridTimestamp = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// parseECDSAKey reads SendGrid's verification key: the base64 of a DER
// (PKIX) ECDSA public key, as its settings page shows it.
func parseECDSAKey(b64 string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an ECDSA public key", pub)
	}
	return ec, nil
}

// sendgrid checks SendGrid's signed event webhook: an ECDSA signature
// (ASN.1, base64) of the timestamp header followed by the raw body.
func sendgrid(key *ecdsa.PublicKey, window time.Duration) verifier {
	return func(r *http.Request, body []byte, now time.Time) (func(), error) {
		sig, ts := r.Header.Get(sendgridSignature), r.Header.Get(sendgridTimestamp)
		if sig == "" || ts == "" {
			return nil, errNoCredentials
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		digest := sha256.Sum256(append([]byte(ts), body...))
		if err != nil || !ecdsa.VerifyASN1(key, digest[:], raw) {
			return nil, fmt.Errorf("%w: sendgrid ECDSA", errBadSignature)
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || !within(time.Unix(sec, 0), now, window) {
			return nil, fmt.Errorf("%w: timestamp %q outside replay_window %s", errReplay, ts, window)
		}
		return nil, nil
	}
}

// mandrill checks X-Mandrill-Signature: base64 HMAC-SHA1, keyed with the
// webhook key, of the webhook URL followed by each POST parameter's name
// and value, sorted by name.
func mandrill(key []byte, webhookURL string) verifier {
	return func(r *http.Request, body []byte, _ time.Time) (func(), error) {
		sig := r.Header.Get("X-Mandrill-Signature")
		if sig == "" {
			return nil, errNoCredentials
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("%w: mandrill: body is no form", errBadSignature)
		}
		mac := hmac.New(sha1.New, key)
		mac.Write([]byte(webhookURL))
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range form {
				if !yield(k) {
					return
				}
			}
		}) {
			for _, v := range form[k] {
				mac.Write([]byte(k + v))
			}
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			return nil, fmt.Errorf("%w: mandrill HMAC", errBadSignature)
		}
		return nil, nil
	}
}

// all runs several verifiers; each must pass.
func all(vs ...verifier) verifier {
	return func(r *http.Request, body []byte, now time.Time) (func(), error) {
		var commits []func()
		for _, v := range vs {
			commit, err := v(r, body, now)
			if err != nil {
				return nil, err
			}
			if commit != nil {
				commits = append(commits, commit)
			}
		}
		return func() {
			for _, c := range commits {
				c()
			}
		}, nil
	}
}
