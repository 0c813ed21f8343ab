package mailwebhooks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	telegrafconfig "github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

// attack is the receiver as an attacker finds it: every preset, SNS
// certificates fetched from the addresses sample.conf suggests (served by
// a fake SNS), and a second SNS path that takes SignatureVersion 2 only.
// read_timeout is an hour: a request answered only once its slow body is
// given up on would not be answered within the tests' bound.
type attack struct {
	*testing.T
	k    *keys
	w    *MailWebhooks
	out  *outputs
	aws  *fakeSNS
	base string
}

const (
	certURLs  = "https://sns.*.amazonaws.com/SimpleNotificationService-*.pem" // as sample.conf suggests
	v2Only    = "/ses_sns_v2"
	attackers = "arn:aws:sns:us-west-2:210987654321:attacker" // another account's topic, signed by the same SNS
)

func newAttack(t *testing.T, edit func(*MailWebhooks)) *attack {
	t.Helper()
	k := newKeys(t)
	a := &attack{T: t, k: k, aws: newFakeSNS(t, k)}
	a.w, a.out, a.base = start(t, k, func(w *MailWebhooks) {
		w.ReadTimeout = telegrafconfig.Duration(time.Hour)
		sns := provider(w, "ses_sns")
		sns.SNSCertificates, sns.SNSCertificateURLs = nil, []string{certURLs}
		w.Providers = append(w.Providers, &Provider{Mapping: mailevent.Mapping{Preset: "ses_sns"}, Name: "ses_sns_v2", Path: v2Only,
			SNSCertificateURLs: []string{certURLs}, SNSTopicARNs: []string{snsTopic}, SNSSignatureVersions: []string{"2"}})
		if edit != nil {
			edit(w)
		}
	})
	for _, p := range a.w.Providers {
		if p.sns != nil {
			a.aws.use(p)
		}
	}
	// The certificate is fetched once, by a genuine notification: what
	// follows fetches nothing more unless a row says so.
	code, msg := a.send(a.sign("ses_sns", a.envelope(nil), time.Now()))
	require.Equal(t, http.StatusOK, code, msg)
	require.Equal(t, int32(1), a.aws.fetches.Load())
	return a
}

func (a *attack) url(preset string) string { return a.base + provider(a.w, preset).Path }

// sample is the first published sample of a preset.
func (a *attack) sample(preset string) []byte {
	bodies, err := providertest.Bodies(preset)
	require.NoError(a, err)
	return bodies[0].Data
}

// sign is a request as the provider signs it, at signed.
func (a *attack) sign(preset string, body []byte, signed time.Time) *http.Request {
	return a.k.sign(a.T, preset, a.url(preset), body, signed)
}

// envelope is an SNS sample notification, changed by edit before it is
// signed.
func (a *attack) envelope(edit func(map[string]string)) []byte {
	var doc map[string]string
	require.NoError(a, json.Unmarshal(a.sample("ses_sns"), &doc))
	if edit != nil {
		edit(doc)
	}
	b, err := json.Marshal(doc)
	require.NoError(a, err)
	return b
}

// certURL is a signed SNS notification naming u as its SigningCertURL.
func (a *attack) certURL(u string) func() int {
	return a.do(a.sign("ses_sns", a.envelope(func(d map[string]string) { d["SigningCertURL"] = u }), time.Now()))
}

// rewrite changes a request's body after it was signed.
func (a *attack) rewrite(req *http.Request, edit func([]byte) []byte) *http.Request {
	b, err := io.ReadAll(req.Body)
	require.NoError(a, err)
	b = edit(b)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	return req
}

func (a *attack) send(req *http.Request) (int, string) {
	a.Helper()
	return do(a.T, req)
}

// do is the attack of a row: the request, sent when the row runs.
func (a *attack) do(req *http.Request) func() int {
	return func() int {
		code, _ := a.send(req)
		return code
	}
}

// twice sends a request once, answered 2xx (what the provider sent), and
// returns the replay of the same bytes.
func (a *attack) twice(req *http.Request) func() int {
	b, err := io.ReadAll(req.Body)
	require.NoError(a, err)
	again := func() *http.Request {
		r, err := http.NewRequest(req.Method, req.URL.String(), bytes.NewReader(b))
		require.NoError(a, err)
		r.Header = req.Header.Clone()
		return r
	}
	code, msg := a.send(again())
	require.Equal(a, http.StatusOK, code, msg)
	return a.do(again())
}

// slowly sends a request's headers and the first bytes of the 1 MiB
// body they declare, then nothing more; the status is what the receiver
// answers meanwhile, or once it gives up on the body.
func (a *attack) slowly(path string, header http.Header) func() int {
	return func() int {
		conn, err := net.Dial("tcp", a.w.addr.String())
		require.NoError(a, err)
		defer conn.Close()
		var b bytes.Buffer
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: %d\r\n", path, 1<<20)
		require.NoError(a, header.Write(&b))
		b.WriteString("\r\n{\"signature\":")
		_, err = conn.Write(b.Bytes())
		require.NoError(a, err)
		// Not a timing assertion: a bound, so that a receiver that never
		// answers fails the test instead of hanging it.
		require.NoError(a, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(a, err)
		resp.Body.Close()
		return resp.StatusCode
	}
}

func (a *attack) method(m, preset string) func() int {
	req, err := http.NewRequest(m, a.url(preset), strings.NewReader(`{}`))
	require.NoError(a, err)
	return a.do(req)
}

func deep(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// TestAdversarial: each attack on the receiver, answered as it must be,
// with no event written and nothing fetched that the row does not say.
func TestAdversarial(t *testing.T) {
	a := newAttack(t, nil)
	now := time.Now()
	window := defaultReplayWindow
	forged := `{\"eventType\":\"Delivery\",\"mail\":{\"timestamp\":\"2026-01-01T00:00:00Z\",\"messageId\":\"forged\"}}`
	basic := http.Header{}
	basic.Set("Authorization", "Basic bWFpbHRpY2s6Z3Vlc3M=") // mailtick:guess
	tests := []struct {
		name    string
		attack  func(a *attack) func() int // prepares, then returns the attack
		want    int
		fetches int32 // SNS certificate fetches the attack may cause
	}{
		// 1. Forged SNS certificates: signed with the key of the
		// certificate each address would give, and each address matching
		// the glob sample.conf suggests read as a plain string, so that
		// only the parsed address refuses them.
		{name: "sns: cert URL with the host in its path", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.attacker.example/.amazonaws.com/SimpleNotificationService-1.pem")
		}},
		{name: "sns: cert URL on a host under amazonaws.com's name", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-east-1.amazonaws.com.evil.com/.amazonaws.com/SimpleNotificationService-1.pem")
		}},
		{name: "sns: cert URL over http", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem")
		}},
		{name: "sns: cert URL with user info", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-east-1.amazonaws.com@evil.com/.amazonaws.com/SimpleNotificationService-1.pem")
		}},
		{name: "sns: cert URL with a port", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.evil.com:8443/.amazonaws.com/SimpleNotificationService-1.pem")
		}},
		{name: "sns: cert URL with another path on SNS's host", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-east-1.amazonaws.com/uploads/.amazonaws.com/SimpleNotificationService-abc.pem")
		}},
		{name: "sns: cert URL whose name is no hex", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-evil.pem")
		}},
		{name: "sns: cert URL that redirects: not followed", want: http.StatusBadGateway, fetches: 1, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0bad.pem")
		}},
		{name: "sns: the same, again: the failure is remembered", want: http.StatusBadGateway, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0bad.pem")
		}},
		// 2. Any topic.
		{name: "sns: another account's topic, signed by SNS", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.do(a.sign("ses_sns", a.envelope(func(d map[string]string) { d["TopicArn"] = attackers }), now))
		}},
		{name: "sns: the topic header allowed, the signed topic not", want: http.StatusForbidden, attack: func(a *attack) func() int {
			req := a.sign("ses_sns", a.envelope(func(d map[string]string) { d["TopicArn"] = attackers }), now)
			req.Header.Set("X-Amz-Sns-Topic-Arn", snsTopic)
			return a.do(req)
		}},
		// 3. Verified bytes and decoded bytes.
		{name: "sns: a forged Message before the signed one", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.rewrite(a.sign("ses_sns", a.envelope(nil), now), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`{`), []byte(`{"Message":"`+forged+`",`), 1)
			}))
		}},
		{name: "sns: a forged message, in lower case", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.rewrite(a.sign("ses_sns", a.envelope(nil), now), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`{`), []byte(`{"message":"`+forged+`",`), 1)
			}))
		}},
		{name: "sns: a second envelope after the signed one", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.rewrite(a.sign("ses_sns", a.envelope(nil), now), func(b []byte) []byte {
				return append(b, `{"Message":"`+forged+`"}`...)
			}))
		}},
		{name: "sns: a key twice inside the signed Message", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("ses_sns", a.envelope(func(d map[string]string) {
				d["Message"] = strings.Replace(d["Message"], `{`, `{"eventType":"Bounce",`, 1)
			}), now))
		}},
		{name: "sns: replayed at the window's edge", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.twice(a.sign("ses_sns", a.envelope(nil), now.Add(-window+10*time.Second)))
		}},
		{name: "sns: past the window", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.do(a.sign("ses_sns", a.envelope(nil), now.Add(-window-10*time.Second)))
		}},
		{name: "sns: from the future, past the window", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.do(a.sign("ses_sns", a.envelope(nil), now.Add(window+10*time.Second)))
		}},
		{name: "sns: a Type SNS does not send", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.do(a.sign("ses_sns", a.envelope(func(d map[string]string) { d["Type"] = "Event" }), now))
		}},
		{name: "sns: not an envelope", want: http.StatusUnauthorized, attack: func(a *attack) func() int {
			req := a.sign("ses_sns", a.envelope(nil), now)
			return a.do(a.rewrite(req, func([]byte) []byte { return []byte(`[1]`) }))
		}},
		// 4. Credentials in the headers are checked before a slot is
		// taken and the body read: the slow body is never waited for.
		{name: "slow body without basic auth", want: http.StatusUnauthorized, attack: func(a *attack) func() int {
			return a.slowly(provider(a.w, "postmark").Path, http.Header{})
		}},
		{name: "slow body with a wrong password", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.slowly(provider(a.w, "postmark").Path, basic)
		}},
		{name: "slow body without SendGrid's signature", want: http.StatusUnauthorized, attack: func(a *attack) func() int {
			return a.slowly(provider(a.w, "sendgrid").Path, http.Header{})
		}},
		{name: "slow body with a stale SendGrid timestamp", want: http.StatusForbidden, attack: func(a *attack) func() int {
			h := http.Header{}
			h.Set(sendgridSignature, "MEUCIQ==")
			h.Set(sendgridTimestamp, fmt.Sprint(now.Add(-window-time.Minute).Unix()))
			return a.slowly(provider(a.w, "sendgrid").Path, h)
		}},
		{name: "slow body without Mandrill's signature", want: http.StatusUnauthorized, attack: func(a *attack) func() int {
			return a.slowly(provider(a.w, "mandrill").Path, http.Header{})
		}},
		{name: "slow body without SNS's headers", want: http.StatusUnauthorized, attack: func(a *attack) func() int {
			return a.slowly(provider(a.w, "ses_sns").Path, http.Header{})
		}},
		{name: "slow body from another topic", want: http.StatusForbidden, attack: func(a *attack) func() int {
			h := http.Header{}
			h.Set("X-Amz-Sns-Message-Type", "Notification")
			h.Set("X-Amz-Sns-Topic-Arn", attackers)
			return a.slowly(provider(a.w, "ses_sns").Path, h)
		}},
		// 5 is TestMailgunTokenReserved. 6. Certificate URLs, versions.
		{name: "sns: cert URL with a query", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem?a=1")
		}},
		{name: "sns: cert URL with another query", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.certURL("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem?a=2")
		}},
		{name: "sns: cert URL on a host that does not resolve", want: http.StatusBadGateway, fetches: 1, attack: func(a *attack) func() int {
			return a.certURL("https://sns.nowhere-1.amazonaws.com/SimpleNotificationService-abc.pem")
		}},
		{name: "sns: the same, again: the failure is remembered", want: http.StatusBadGateway, attack: func(a *attack) func() int {
			return a.certURL("https://sns.nowhere-1.amazonaws.com/SimpleNotificationService-abc.pem")
		}},
		{name: "sns: SignatureVersion 1 where 2 is required", want: http.StatusForbidden, attack: func(a *attack) func() int {
			var doc map[string]string
			require.NoError(a, json.Unmarshal(a.envelope(nil), &doc))
			doc["Timestamp"], doc["SignatureVersion"] = now.UTC().Format(time.RFC3339), "1"
			a.k.signSNSDoc(a.T, doc)
			b, err := json.Marshal(doc)
			require.NoError(a, err)
			req, err := http.NewRequest(http.MethodPost, a.base+v2Only, bytes.NewReader(b))
			require.NoError(a, err)
			snsHeaders(a.T, req.Header, b)
			return a.do(req)
		}},
		// Classic attacks.
		{name: "PUT", want: http.StatusMethodNotAllowed, attack: func(a *attack) func() int { return a.method(http.MethodPut, "postmark") }},
		{name: "DELETE", want: http.StatusMethodNotAllowed, attack: func(a *attack) func() int { return a.method(http.MethodDelete, "mailgun") }},
		{name: "PATCH", want: http.StatusMethodNotAllowed, attack: func(a *attack) func() int { return a.method(http.MethodPatch, "sendgrid") }},
		{name: "OPTIONS", want: http.StatusMethodNotAllowed, attack: func(a *attack) func() int { return a.method(http.MethodOptions, "ses_sns") }},
		{name: "oversized headers", want: http.StatusRequestHeaderFieldsTooLarge, attack: func(a *attack) func() int {
			req := a.sign("postmark", a.sample("postmark"), now)
			req.Header.Set("X-Padding", strings.Repeat("a", 2*maxHeaderBytes))
			return a.do(req)
		}},
		{name: "mandrill: a huge form field", want: http.StatusRequestEntityTooLarge, attack: func(a *attack) func() int {
			body := url.Values{"mandrill_events": {strings.Repeat("[", 2<<20)}}.Encode()
			return a.do(a.sign("mandrill", []byte(body), now))
		}},
		{name: "mandrill: 100,000 form fields, badly signed", want: http.StatusForbidden, attack: func(a *attack) func() int {
			body := strings.Repeat("a=1&", 100_000) + "mandrill_events=[]"
			req := a.sign("mandrill", []byte(`mandrill_events=[]`), now)
			return a.do(a.rewrite(req, func([]byte) []byte { return []byte(body) }))
		}},
		{name: "sendgrid: deep JSON, signed", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("sendgrid", []byte(deep(100_000)), now))
		}},
		{name: "mailgun: deep event-data, signed", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("mailgun", []byte(`{"event-data":`+deep(5000)+`}`), now))
		}},
		{name: "mailgun: deeper than encoding/json reads", want: http.StatusUnauthorized, attack: func(a *attack) func() int {
			req := a.sign("mailgun", a.sample("mailgun"), now)
			return a.do(a.rewrite(req, func(b []byte) []byte {
				return bytes.Replace(b, []byte(`{`), []byte(`{"x":`+deep(20_000)+`,`), 1)
			}))
		}},
		{name: "sns: deep JSON in the signed Message", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("ses_sns", a.envelope(func(d map[string]string) { d["Message"] = deep(5000) }), now))
		}},
		{name: "mailgun: event-data twice (Mailgun signs only the token)", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			req := a.sign("mailgun", a.sample("mailgun"), now)
			return a.do(a.rewrite(req, func(b []byte) []byte {
				return bytes.Replace(b, []byte(`{`), []byte(`{"event-data":{"event":"delivered","timestamp":1},`), 1)
			}))
		}},
		{name: "mailgun: signature twice", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			req := a.sign("mailgun", a.sample("mailgun"), now)
			return a.do(a.rewrite(req, func(b []byte) []byte {
				return bytes.Replace(b, []byte(`{`), []byte(`{"signature":{"token":"x"},`), 1)
			}))
		}},
		{name: "mailgun_events_api: a key twice", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("mailgun_events_api", []byte(`{"items":[{"event":"delivered","event":"failed","timestamp":1}]}`), now))
		}},
		{name: "sendgrid: a key twice, signed", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("sendgrid", []byte(`[{"email":"a@example.com","event":"delivered","event":"bounce","timestamp":1513299569}]`), now))
		}},
		{name: "mandrill: mandrill_events twice, signed", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			body := url.Values{"mandrill_events": {`[{"event":"send","ts":1}]`, `[{"event":"hard_bounce","ts":1}]`}}.Encode()
			return a.do(a.sign("mandrill", []byte(body), now))
		}},
		{name: "mandrill: a key twice in an event, signed", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			body := url.Values{"mandrill_events": {`[{"event":"send","event":"hard_bounce","ts":1}]`}}.Encode()
			return a.do(a.sign("mandrill", []byte(body), now))
		}},
		{name: "postmark: a key twice", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("postmark", []byte(`{"RecordType":"Delivery","RecordType":"Bounce","DeliveredAt":"2026-01-01T00:00:00Z"}`), now))
		}},
		{name: "sparkpost: a key twice", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("sparkpost", []byte(`[{"msys":{"message_event":{"type":"delivery","type":"bounce","timestamp":"1"}}}]`), now))
		}},
		{name: "ses: a key twice", want: http.StatusBadRequest, attack: func(a *attack) func() int {
			return a.do(a.sign("ses", []byte(`{"eventType":"Delivery","eventType":"Bounce","mail":{"timestamp":"2026-01-01T00:00:00Z"}}`), now))
		}},
		{name: "mailgun: replayed at the window's edge", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.twice(a.sign("mailgun", a.sample("mailgun"), now.Add(-window+10*time.Second)))
		}},
		{name: "mailgun: past the window", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.do(a.sign("mailgun", a.sample("mailgun"), now.Add(-window-10*time.Second)))
		}},
		{name: "sendgrid: past the window", want: http.StatusForbidden, attack: func(a *attack) func() int {
			return a.do(a.sign("sendgrid", a.sample("sendgrid"), now.Add(-window-10*time.Second)))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.T = t
			attack := tt.attack(a)
			events, written, fetches := len(a.out.GetTelegrafMetrics()), len(a.out.Written()), a.aws.fetches.Load()
			require.Equal(t, tt.want, attack())
			require.Len(t, a.out.GetTelegrafMetrics(), events, "no event emitted")
			require.Len(t, a.out.Written(), written, "no event written")
			require.Equal(t, tt.fetches, a.aws.fetches.Load()-fetches, "certificate fetches")
		})
	}
}

// TestSlowBodyCut: Mailgun signs inside the body, so a request to its
// path holds a slot while its body comes: at most read_timeout, which
// bounds the whole request, body included.
func TestSlowBodyCut(t *testing.T) {
	a := newAttack(t, func(w *MailWebhooks) { w.ReadTimeout = telegrafconfig.Duration(time.Second) })
	require.Equal(t, http.StatusBadRequest, a.slowly(provider(a.w, "mailgun").Path, http.Header{})())
	require.Len(t, a.out.GetTelegrafMetrics(), 1, "newAttack's genuine notification only")
}

// TestMailgunTokenReserved: the same Mailgun signature sent again while
// the first request waits for the outputs, with other event-data (Mailgun
// signs only timestamp and token), is refused; a request answered 503
// gives its token back, so that Mailgun's retry is accepted.
func TestMailgunTokenReserved(t *testing.T) {
	k := newKeys(t)
	w, out, base := start(t, k, nil)
	path := base + provider(w, "mailgun").Path
	bodies, err := providertest.Bodies("mailgun")
	require.NoError(t, err)
	signed, err := io.ReadAll(k.sign(t, "mailgun", path, bodies[2].Data, time.Now()).Body)
	require.NoError(t, err)
	post := func(b []byte) (int, string) {
		req, err := http.NewRequest(http.MethodPost, path, bytes.NewReader(b))
		require.NoError(t, err)
		return do(t, req)
	}

	out.mode.Store("hold")
	first := make(chan int)
	go func() {
		code, _ := post(signed)
		first <- code
	}()
	require.Eventually(t, func() bool { return len(out.GetTelegrafMetrics()) == 1 }, 5*time.Second, time.Millisecond, "the first waits for the outputs")
	var doc, other map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(signed, &doc))
	require.NoError(t, json.Unmarshal(bodies[0].Data, &other))
	doc["event-data"] = other["event-data"]
	altered, err := json.Marshal(doc)
	require.NoError(t, err)
	require.NotEqual(t, signed, altered)
	code, _ := post(altered)
	require.Equal(t, http.StatusForbidden, code, "the token is taken")
	out.mode.Store("accept")
	require.Equal(t, http.StatusOK, <-first)
	require.Len(t, out.GetTelegrafMetrics(), 1, "the altered events never emitted")

	// Refused by the outputs: 503, and the token is given back.
	signed, err = io.ReadAll(k.sign(t, "mailgun", path, bodies[1].Data, time.Now()).Body)
	require.NoError(t, err)
	out.mode.Store("reject")
	code, _ = post(signed)
	require.Equal(t, http.StatusServiceUnavailable, code)
	out.mode.Store("accept")
	code, msg := post(signed)
	require.Equal(t, http.StatusOK, code, msg)
}

// TestSlowSendersHoldNoSlot: with max_in_flight = 2, twenty connections
// without credentials, each stalled in the middle of its body, are
// answered at once and hold no slot: a provider's request meanwhile is
// answered 200, not 503.
func TestSlowSendersHoldNoSlot(t *testing.T) {
	a := newAttack(t, func(w *MailWebhooks) { w.MaxInFlight = 2 })
	var wg sync.WaitGroup
	for i := range 20 {
		preset := []string{"postmark", "sendgrid", "mandrill", "ses_sns"}[i%4]
		wg.Go(func() {
			require.Equal(t, http.StatusUnauthorized, a.slowly(provider(a.w, preset).Path, http.Header{})())
		})
	}
	wg.Wait()
	for _, preset := range []string{"postmark", "sendgrid", "ses_sns"} {
		code, msg := a.send(a.sign(preset, a.sample(preset), time.Now()))
		require.Equal(t, http.StatusOK, code, "%s: %s", preset, msg)
	}
}

// TestSNSCertificateCache: certificates fetched from more SNS addresses
// than are remembered: the cache holds at most maxCertificates, and an
// address it still holds is not fetched again.
func TestSNSCertificateCache(t *testing.T) {
	a := newAttack(t, nil)
	sns := provider(a.w, "ses_sns").sns
	for i := range maxCertificates + 16 {
		code := a.certURL(fmt.Sprintf("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-%032x.pem", i))()
		require.Equal(t, http.StatusOK, code)
		sns.mu.Lock()
		require.LessOrEqual(t, len(sns.fetched), maxCertificates)
		sns.mu.Unlock()
	}
	fetches := a.aws.fetches.Load()
	code := a.certURL(fmt.Sprintf("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-%032x.pem", maxCertificates+15))()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, fetches, a.aws.fetches.Load(), "the last one is still remembered")
}

// TestReplayWindowOff: replay_window = 0 turns the check off, as
// documented (before, 0 meant 10m and a negative value turned it off):
// a Mailgun request signed a day ago is accepted, and so is the same
// request again.
func TestReplayWindowOff(t *testing.T) {
	t.Setenv("MAILGUN_WEBHOOK_SIGNING_KEY", "key-x")
	c := telegrafconfig.NewConfig()
	require.NoError(t, c.LoadConfigData([]byte(sampleConfig+"\n    replay_window = \"0s\"\n"), ""))
	require.NoError(t, c.Inputs[0].Init())
	off := c.Inputs[0].Input.(*MailWebhooks).Providers[0].ReplayWindow
	require.NotNil(t, off, "written as 0, not left out")
	require.Zero(t, *off)

	k := newKeys(t)
	w, _, base := start(t, k, func(w *MailWebhooks) {
		var off telegrafconfig.Duration
		provider(w, "mailgun").ReplayWindow = &off
	})
	path := base + provider(w, "mailgun").Path
	bodies, err := providertest.Bodies("mailgun")
	require.NoError(t, err)
	signed, err := io.ReadAll(k.sign(t, "mailgun", path, bodies[0].Data, time.Now().Add(-24*time.Hour)).Body)
	require.NoError(t, err)
	for range 2 {
		req, err := http.NewRequest(http.MethodPost, path, bytes.NewReader(signed))
		require.NoError(t, err)
		code, msg := do(t, req)
		require.Equal(t, http.StatusOK, code, msg)
	}
}

// TestOneBodyLimit: a SendGrid batch larger than the decoder's former
// 512 KiB limit but within max_body_size (SendGrid posts up to 768 KB) is
// decoded whole, not read, verified, then refused on every retry.
func TestOneBodyLimit(t *testing.T) {
	k := newKeys(t)
	w, out, base := start(t, k, nil)
	events := make([]string, 0, 5000)
	for i := range cap(events) {
		events = append(events, fmt.Sprintf(`{"email":"rcpt%d@example.com","event":"delivered","timestamp":%d,"sg_message_id":"m%d.filter0001","response":"250 OK queued as %08d"}`,
			i, 1513299569+i, i, i))
	}
	body := []byte("[" + strings.Join(events, ",") + "]")
	require.Greater(t, len(body), 700<<10)
	require.Less(t, len(body), int(w.MaxBodySize))
	code, msg := do(t, k.sign(t, "sendgrid", base+provider(w, "sendgrid").Path, body, time.Now()))
	require.Equal(t, http.StatusOK, code, msg)
	require.Equal(t, "ok: 5000 events", msg)
	require.Len(t, out.GetTelegrafMetrics(), 5000)
}

// TestMemoryUnderAttack: the memory the receiver holds (heap and
// goroutine stacks, after a GC) while 400 connections stall in their
// headers or bodies, after 64 oversized bodies were sent, and once the
// connections are gone. Their bodies declare 200 KiB, which net/http
// would wait for before answering (it reads up to 256 KiB of an unread
// body): refused early, they are closed instead. At most max_in_flight
// bodies are read at once, each up to max_body_size; every other
// connection costs its goroutine and buffers. The bounds are stated here, generous: keeping the oversized
// bodies, or growing with each connection's declared size, would exceed
// them many times.
func TestMemoryUnderAttack(t *testing.T) {
	const (
		stalled       = 400
		oversized     = 64
		oversizedBody = 4 << 20
		whileBound    = 48 << 20 // 8 in flight x 1 MiB, and 400 connections at < 64 KiB
		afterBound    = 4 << 20
	)
	a := newAttack(t, func(w *MailWebhooks) { w.ReadTimeout = telegrafconfig.Duration(time.Minute) })
	held := func() int64 {
		runtime.GC()
		runtime.GC() // and what sync.Pools (net/http's buffers) kept for one cycle
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc + ms.StackInuse)
	}
	before, goroutines := held(), runtime.NumGoroutine()

	big := bytes.Repeat([]byte("x"), oversizedBody)
	var wg sync.WaitGroup
	for i := range oversized {
		preset := []string{"mailgun", "postmark"}[i%2]
		wg.Go(func() {
			req := a.rewrite(a.sign(preset, a.sample(preset), time.Now()), func([]byte) []byte { return big })
			code, _ := a.send(req)
			require.Contains(t, []int{http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable}, code)
		})
	}
	wg.Wait()

	conns := make([]net.Conn, 0, stalled)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	for i := range stalled {
		c, err := net.Dial("tcp", a.w.addr.String())
		require.NoError(t, err)
		conns = append(conns, c)
		preset := []string{"mailgun", "sendgrid", "postmark", "ses_sns"}[i%4]
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", provider(a.w, preset).Path, 200<<10)
		if i%8 == 0 { // stalled in the headers
			_, err = c.Write([]byte(head))
			require.NoError(t, err)
			continue
		}
		_, err = c.Write([]byte(head + "\r\n" + strings.Repeat("{", 1000)))
		require.NoError(t, err)
		if preset != "mailgun" { // answered at once, the rest of its body awaited
			require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
	}
	// Accepted in order: once a later connection is answered, every
	// stalled one is the server's.
	require.Equal(t, http.StatusOK, a.method(http.MethodHead, "postmark")())
	while := held() - before
	t.Logf("memory: %.1f MiB more while %d connections stall (bound %d MiB)", float64(while)/(1<<20), stalled, whileBound>>20)
	require.Less(t, while, int64(whileBound))

	closeAll()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+4 }, 30*time.Second, 50*time.Millisecond,
		"the server's connections end (net/http lingers 500 ms on each it closes)")
	after := held() - before
	t.Logf("memory: %.1f MiB more once they are gone (bound %d MiB)", float64(after)/(1<<20), afterBound>>20)
	require.Less(t, after, int64(afterBound))
	require.Len(t, a.out.GetTelegrafMetrics(), 1, "newAttack's genuine notification only")
}
