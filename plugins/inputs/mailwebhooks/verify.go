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
// credentials answer 401, wrong ones or a replay 403 (all three count as
// signature_failures), a malformed envelope 400; an SNS certificate that
// cannot be fetched 502, and 503 while another is being fetched.
var (
	errNoCredentials = errors.New("no credentials")
	errBadSignature  = errors.New("bad signature")
	errReplay        = errors.New("replayed or stale request")
	errMalformed     = errors.New("malformed envelope")
	errCertificate   = errors.New("the SNS signing certificate could not be fetched")
	errFetchBusy     = errors.New("another SNS signing certificate is being fetched")
)

// verifier checks a request as its provider signs it, in two steps. head
// sees the headers alone, before a max_in_flight slot is taken and the
// body read: basic auth, the signature headers, a signed timestamp. body
// sees the body and returns what to decode: the body itself, or exactly
// what the signature covers (SNS), or nil when there is nothing to decode
// (an SNS subscription message, answered 200). release, if not nil, undoes
// what the check reserved (a Mailgun token, an SNS MessageId): it is
// called when the request is not answered 2xx, so that the provider's
// retry is not taken for a replay.
type verifier struct {
	head func(r *http.Request, now time.Time) error
	body func(r *http.Request, body []byte, now time.Time) (decode []byte, release func(), err error)
}

// all runs several verifiers; each must pass. The body each returns is
// the next one's.
func all(vs ...verifier) verifier {
	return verifier{
		head: func(r *http.Request, now time.Time) error {
			for _, v := range vs {
				if v.head == nil {
					continue
				}
				if err := v.head(r, now); err != nil {
					return err
				}
			}
			return nil
		},
		body: func(r *http.Request, body []byte, now time.Time) ([]byte, func(), error) {
			var releases []func()
			release := func() {
				for _, f := range releases {
					f()
				}
			}
			for _, v := range vs {
				if v.body == nil || body == nil {
					continue
				}
				out, rel, err := v.body(r, body, now)
				if err != nil {
					release()
					return nil, nil, err
				}
				if rel != nil {
					releases = append(releases, rel)
				}
				body = out
			}
			return body, release, nil
		},
	}
}

// basicAuth checks HTTP basic authentication (Postmark, SparkPost, and any
// provider with username set), on the headers alone.
func basicAuth(user string, pass []byte) verifier {
	return verifier{head: func(r *http.Request, _ time.Time) error {
		u, p, ok := r.BasicAuth()
		if !ok {
			return errNoCredentials
		}
		userOK := subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(p), pass) == 1
		if !userOK || !passOK {
			return fmt.Errorf("%w: basic auth", errBadSignature)
		}
		return nil
	}}
}

// needHeader refuses a request without the header its provider signs
// with, before its body is read.
func needHeader(name string) func(*http.Request, time.Time) error {
	return func(r *http.Request, _ time.Time) error {
		if r.Header.Get(name) == "" {
			return errNoCredentials
		}
		return nil
	}
}

// replay is one provider's replay check: signed times no further from now
// than window, and the nonces (Mailgun tokens, SNS MessageIds) of the
// requests accepted within it. A zero window turns both off.
type replay struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]time.Time // nonce -> its signed time
	swept  time.Time
}

func newReplay(window time.Duration) *replay {
	return &replay{window: window, seen: make(map[string]time.Time)}
}

// fresh refuses a signed time outside the window.
func (c *replay) fresh(signed, now time.Time, what string) error {
	if c.window == 0 {
		return nil
	}
	if d := now.Sub(signed); d > c.window || d < -c.window {
		return fmt.Errorf("%w: %s %s outside replay_window %s", errReplay, what, signed.UTC().Format(time.RFC3339), c.window)
	}
	return nil
}

// reserve remembers nonce, signed at signed (already found fresh), until
// it is outside the window, and returns its release; it refuses a nonce
// remembered already. Only signed nonces come here, so the map holds what
// the provider sent within one window.
func (c *replay) reserve(nonce string, signed, now time.Time) (func(), error) {
	if c.window == 0 {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.swept) > c.window/16 {
		for k, at := range c.seen {
			if now.Sub(at) > c.window {
				delete(c.seen, k)
			}
		}
		c.swept = now
	}
	if _, ok := c.seen[nonce]; ok {
		return nil, fmt.Errorf("%w: %q seen before", errReplay, nonce)
	}
	c.seen[nonce] = signed
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.seen, nonce)
	}, nil
}

// mailgun checks Mailgun's signature: HMAC-SHA256 of timestamp+token with
// the webhook signing key, hex encoded, inside the JSON body. The
// timestamp must be within the replay window and the token not seen in
// it. The token is reserved here, before the request waits for the
// outputs, so that the same signature sent again meanwhile (with other
// event-data: Mailgun signs only timestamp and token) is refused; it is
// released when the request is not answered 2xx, so that Mailgun's retry
// is accepted.
func mailgun(key []byte, rp *replay) verifier {
	return verifier{body: func(_ *http.Request, body []byte, now time.Time) ([]byte, func(), error) {
		var env struct {
			Signature *struct {
				Timestamp string `json:"timestamp"`
				Token     string `json:"token"`
				Signature string `json:"signature"`
			} `json:"signature"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Signature == nil || env.Signature.Signature == "" {
			return nil, nil, errNoCredentials
		}
		s := env.Signature
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(s.Timestamp + s.Token))
		got, err := hex.DecodeString(s.Signature)
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			return nil, nil, fmt.Errorf("%w: mailgun HMAC", errBadSignature)
		}
		signed, err := unixTime(s.Timestamp)
		if err == nil {
			err = rp.fresh(signed, now, "timestamp")
		}
		if err != nil {
			return nil, nil, err
		}
		release, err := rp.reserve("mailgun token "+s.Token, signed, now)
		return body, release, err
	}}
}

func unixTime(s string) (time.Time, error) {
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %q", errBadSignature, s)
	}
	return time.Unix(sec, 0), nil
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
// (ASN.1, base64) of the timestamp header followed by the raw body. The
// headers and the timestamp's age are checked before the body is read.
// SendGrid sends no nonce: within the window, a captured request can be
// sent again (its events land on the same points).
func sendgrid(key *ecdsa.PublicKey, rp *replay) verifier {
	return verifier{
		head: func(r *http.Request, now time.Time) error {
			sig, ts := r.Header.Get(sendgridSignature), r.Header.Get(sendgridTimestamp)
			if sig == "" || ts == "" {
				return errNoCredentials
			}
			signed, err := unixTime(ts)
			if err != nil {
				return err
			}
			return rp.fresh(signed, now, "timestamp")
		},
		body: func(r *http.Request, body []byte, _ time.Time) ([]byte, func(), error) {
			ts := r.Header.Get(sendgridTimestamp)
			raw, err := base64.StdEncoding.DecodeString(r.Header.Get(sendgridSignature))
			digest := sha256.Sum256(append([]byte(ts), body...))
			if err != nil || !ecdsa.VerifyASN1(key, digest[:], raw) {
				return nil, nil, fmt.Errorf("%w: sendgrid ECDSA", errBadSignature)
			}
			return body, nil, nil
		},
	}
}

// mandrill checks X-Mandrill-Signature: base64 HMAC-SHA1, keyed with the
// webhook key, of the webhook URL followed by each POST parameter's name
// and value, sorted by name. Mandrill signs no time: a captured request
// can be sent again (its events land on the same points).
func mandrill(key []byte, webhookURL string) verifier {
	return verifier{
		head: needHeader("X-Mandrill-Signature"),
		body: func(r *http.Request, body []byte, _ time.Time) ([]byte, func(), error) {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, nil, fmt.Errorf("%w: mandrill: body is no form", errBadSignature)
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
			got, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Mandrill-Signature"))
			if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
				return nil, nil, fmt.Errorf("%w: mandrill HMAC", errBadSignature)
			}
			return body, nil, nil
		},
	}
}
