// Package providertest holds the e-mail providers' published event
// samples (testdata/SOURCES.md says where each comes from) and turns them
// into request bodies as each provider POSTs them.
package providertest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

//go:embed testdata/*.json
var files embed.FS

// Body is one request body of a provider, with what it holds.
type Body struct {
	Name   string // file and place, for test names
	Data   []byte
	Events int // events the provider means it to carry
}

// Bodies returns the sample bodies of a preset, as the provider sends
// them (ses_sns: unsigned SNS envelopes; mailgun: unsigned webhooks).
func Bodies(preset string) ([]Body, error) {
	switch preset {
	case "mailgun":
		return each("mailgun-events.json", func(ev json.RawMessage) ([]byte, int, error) {
			b, err := json.Marshal(map[string]any{
				"signature":  map[string]string{"timestamp": "0", "token": "", "signature": ""},
				"event-data": ev,
			})
			return b, 1, err
		})
	case "mailgun_events_api":
		return each("mailgun-events-api.json", func(page json.RawMessage) ([]byte, int, error) {
			var p struct{ Items []json.RawMessage }
			err := json.Unmarshal(page, &p)
			return page, len(p.Items), err
		})
	case "ses":
		return sesRecords(func(rec json.RawMessage) ([]byte, error) { return rec, nil })
	case "ses_sns":
		return sesRecords(func(rec json.RawMessage) ([]byte, error) {
			return json.Marshal(SNSNotification(string(rec)))
		})
	case "sendgrid":
		return each("", func(all json.RawMessage) ([]byte, int, error) {
			var evs []json.RawMessage
			err := json.Unmarshal(all, &evs)
			return all, len(evs), err
		}, "sendgrid.json")
	case "postmark":
		return each("postmark.json", func(ev json.RawMessage) ([]byte, int, error) { return ev, 1, nil })
	case "sparkpost":
		return each("sparkpost.json", func(batch json.RawMessage) ([]byte, int, error) {
			var evs []json.RawMessage
			err := json.Unmarshal(batch, &evs)
			return batch, len(evs), err
		})
	case "mandrill":
		return each("mandrill.json", func(batch json.RawMessage) ([]byte, int, error) {
			var evs []json.RawMessage
			err := json.Unmarshal(batch, &evs)
			return []byte(url.Values{"mandrill_events": {string(batch)}}.Encode()), len(evs), err
		})
	}
	return nil, fmt.Errorf("no samples for preset %q", preset)
}

// SNSNotification is the envelope SNS POSTs to an HTTP(S) subscriber,
// as the SNS Developer Guide shows it, unsigned.
func SNSNotification(message string) map[string]string {
	return map[string]string{
		"Type":             "Notification",
		"MessageId":        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
		"TopicArn":         "arn:aws:sns:us-west-2:123456789012:MyTopic",
		"Message":          message,
		"Timestamp":        "2012-05-02T00:54:06.655Z",
		"SignatureVersion": "1",
		"SigningCertURL":   "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
		"UnsubscribeURL":   "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0-26c4-47ec-8998-413945fb5a96",
	}
}

func sesRecords(wrap func(json.RawMessage) ([]byte, error)) ([]Body, error) {
	var out []Body
	for _, f := range []string{"ses-events.json", "ses-notifications.json"} {
		bodies, err := each(f, func(rec json.RawMessage) ([]byte, int, error) {
			b, err := wrap(rec)
			return b, 1, err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, bodies...)
	}
	return out, nil
}

// each makes one body of each element of the JSON list in file; with
// whole files named instead, one body of each file.
func each(file string, body func(json.RawMessage) ([]byte, int, error), whole ...string) ([]Body, error) {
	var out []Body
	add := func(name string, raw json.RawMessage) error {
		b, n, err := body(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, Body{Name: name, Data: b, Events: n})
		return nil
	}
	for _, f := range whole {
		raw, err := files.ReadFile("testdata/" + f)
		if err != nil {
			return nil, err
		}
		if err := add(f, raw); err != nil {
			return nil, err
		}
	}
	if file == "" {
		return out, nil
	}
	raw, err := files.ReadFile("testdata/" + file)
	if err != nil {
		return nil, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for i, el := range list {
		if err := add(fmt.Sprintf("%s#%d", file, i), el); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// WriteCertificate writes a self-signed certificate for 127.0.0.1 with
// key, and the key, as PEM files in dir: a TLS server's, or a stand-in
// for the SNS signing certificate.
func WriteCertificate(dir string, key crypto.Signer) (certPath, keyPath string, err error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// MailgunSignature is the "signature" object Mailgun sends with a webhook:
// a fresh token, the time, and the HMAC-SHA256 of both with key.
func MailgunSignature(key string, now time.Time) map[string]string {
	token := make([]byte, 25)
	_, _ = rand.Read(token)
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(ts + hex.EncodeToString(token)))
	return map[string]string{"timestamp": ts, "token": hex.EncodeToString(token), "signature": hex.EncodeToString(mac.Sum(nil))}
}
