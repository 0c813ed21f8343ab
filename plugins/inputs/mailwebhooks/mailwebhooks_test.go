package mailwebhooks

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // as Mandrill and SNS v1 sign
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	telegrafconfig "github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/plugintest"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

// keys are the secrets a test signs with, as each provider would.
type keys struct {
	mailgun, mandrill string
	sendgrid          *ecdsa.PrivateKey
	sns               *rsa.PrivateKey
	snsCert           string // PEM file
	user, pass        string
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	k := &keys{mailgun: "key-mailgun-test", mandrill: "mandrill-webhook-key", user: "mailtick", pass: "s3cret"}
	var err error
	k.sendgrid, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k.sns, err = rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	k.snsCert, _, err = providertest.WriteCertificate(t.TempDir(), k.sns)
	require.NoError(t, err)
	return k
}

// providers configures every preset, each verified as its provider signs.
func (k *keys) providers(t *testing.T, base string) []*Provider {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.sendgrid.PublicKey)
	require.NoError(t, err)
	var out []*Provider
	for _, name := range mailevent.PresetNames() {
		p := &Provider{Mapping: mailevent.Mapping{Preset: name}}
		switch name {
		case "mailgun":
			p.SigningKey = telegrafconfig.NewSecret([]byte(k.mailgun))
		case "sendgrid":
			p.VerificationKey = base64.StdEncoding.EncodeToString(der)
		case "mandrill":
			p.SigningKey = telegrafconfig.NewSecret([]byte(k.mandrill))
			p.WebhookURL = base + "/mandrill"
		case "ses_sns":
			p.SNSCertificates = []string{k.snsCert}
			p.SNSTopicARNs = []string{snsTopic}
		default: // postmark, sparkpost, ses, mailgun_events_api
			p.Username, p.Password = k.user, telegrafconfig.NewSecret([]byte(k.pass))
		}
		out = append(out, p)
	}
	return out
}

// sign makes the request a provider would send: body signed with the
// provider's scheme at now.
func (k *keys) sign(t *testing.T, preset, addr string, body []byte, now time.Time) *http.Request {
	t.Helper()
	ts := strconv.FormatInt(now.Unix(), 10)
	header := http.Header{"Content-Type": {"application/json"}}
	basic := false
	switch preset {
	case "mailgun":
		var doc map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &doc))
		sig, err := json.Marshal(providertest.MailgunSignature(k.mailgun, now))
		require.NoError(t, err)
		doc["signature"] = sig
		body, err = json.Marshal(doc)
		require.NoError(t, err)
	case "sendgrid":
		digest := sha256.Sum256(append([]byte(ts), body...))
		sig, err := ecdsa.SignASN1(rand.Reader, k.sendgrid, digest[:])
		require.NoError(t, err)
		header.Set(sendgridSignature, base64.StdEncoding.EncodeToString(sig))
		header.Set(sendgridTimestamp, ts)
	case "mandrill":
		form, err := url.ParseQuery(string(body))
		require.NoError(t, err)
		mac := hmac.New(sha1.New, []byte(k.mandrill))
		mac.Write([]byte(addr))
		for _, name := range slices.Sorted(maps.Keys(form)) {
			for _, v := range form[name] {
				mac.Write([]byte(name + v))
			}
		}
		header.Set("X-Mandrill-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		header.Set("Content-Type", "application/x-www-form-urlencoded")
	case "ses_sns":
		body = k.signSNS(t, body, now)
		snsHeaders(t, header, body)
	default:
		basic = true
	}
	req, err := http.NewRequest(http.MethodPost, addr, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = header
	if basic {
		req.SetBasicAuth(k.user, k.pass)
	}
	return req
}

// snsTopic is the topic of the SNS samples, the one the tests allow.
const snsTopic = "arn:aws:sns:us-west-2:123456789012:MyTopic"

// signSNS signs an SNS envelope as SNS sends it: published at now, a
// MessageId of its own, SignatureVersion 2 (SHA256withRSA).
func (k *keys) signSNS(t *testing.T, body []byte, now time.Time) []byte {
	t.Helper()
	var doc map[string]string
	require.NoError(t, json.Unmarshal(body, &doc))
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	doc["MessageId"] = hex.EncodeToString(id)
	doc["Timestamp"] = now.UTC().Format("2006-01-02T15:04:05.000Z")
	doc["SignatureVersion"] = "2"
	k.signSNSDoc(t, doc)
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	return out
}

// snsHeaders sets the headers SNS sends with an envelope.
func snsHeaders(t *testing.T, header http.Header, body []byte) {
	t.Helper()
	var m snsMessage
	require.NoError(t, json.Unmarshal(body, &m))
	header.Set("Content-Type", "text/plain; charset=UTF-8")
	header.Set("X-Amz-Sns-Message-Type", m.Type)
	header.Set("X-Amz-Sns-Message-Id", m.MessageID)
	header.Set("X-Amz-Sns-Topic-Arn", m.TopicArn)
}

// signSNSDoc sets the Signature of an envelope as its SignatureVersion
// says: "1" SHA1withRSA, else SHA256withRSA.
func (k *keys) signSNSDoc(t *testing.T, doc map[string]string) {
	t.Helper()
	m := snsMessage{Type: doc["Type"], MessageID: doc["MessageId"], Token: doc["Token"], TopicArn: doc["TopicArn"],
		Subject: doc["Subject"], Message: doc["Message"], SubscribeURL: doc["SubscribeURL"], Timestamp: doc["Timestamp"]}
	h := crypto.SHA256
	if doc["SignatureVersion"] == "1" {
		h = crypto.SHA1
	}
	hash := h.New()
	hash.Write([]byte(m.signedText()))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.sns, h, hash.Sum(nil))
	require.NoError(t, err)
	doc["Signature"] = base64.StdEncoding.EncodeToString(sig)
}

// fakeSNS stands in for SNS's endpoints: an HTTPS server every address
// the verifier fetches is dialled to, whatever its host (a host with
// "nowhere" in its name does not resolve). It serves the tests' signing
// certificate at /SimpleNotificationService-<hex>.pem (a redirect at
// ...-0bad.pem), answers ConfirmSubscription, and counts the requests
// it gets and the fetches tried (those that found no host too).
type fakeSNS struct {
	srv      *httptest.Server
	requests atomic.Int32
	fetches  atomic.Int32
	confirms atomic.Int32
}

func newFakeSNS(t *testing.T, k *keys) *fakeSNS {
	t.Helper()
	pemBytes, err := os.ReadFile(k.snsCert)
	require.NoError(t, err)
	f := &fakeSNS{}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		switch {
		case r.URL.Path == "/SimpleNotificationService-0bad.pem":
			http.Redirect(rw, r, "https://attacker.example/cert.pem", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/SimpleNotificationService-"):
			_, _ = rw.Write(pemBytes)
		case r.URL.Path == "/" && r.URL.Query().Get("Action") == "ConfirmSubscription":
			f.confirms.Add(1)
		default:
			http.NotFound(rw, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// use has p's SNS verifier reach the fake for every address.
func (f *fakeSNS) use(p *Provider) {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.Contains(addr, "nowhere") {
				return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
			}
			return (&net.Dialer{}).DialContext(ctx, network, f.srv.Listener.Addr().String())
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the fake's certificate names 127.0.0.1, not SNS
	}
	p.sns.client.Transport = roundTrip(func(r *http.Request) (*http.Response, error) {
		f.fetches.Add(1)
		return transport.RoundTrip(r)
	})
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// outputs stands in for the agent's outputs: it accepts or refuses each
// group of tracked metrics, or holds it until told.
type outputs struct {
	*testutil.Accumulator
	mode    atomic.Value // "accept", "reject", "hold"
	mu      sync.Mutex
	written []telegraf.Metric
	seen    int
	stop    chan struct{}
	done    chan struct{}
}

func newOutputs() *outputs {
	o := &outputs{Accumulator: &testutil.Accumulator{}, stop: make(chan struct{}), done: make(chan struct{})}
	o.mode.Store("accept")
	go func() {
		defer close(o.done)
		for {
			select {
			case <-o.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			o.deliver()
		}
	}()
	return o
}

func (o *outputs) deliver() {
	mode := o.mode.Load().(string)
	if mode == "hold" {
		return
	}
	ms := o.GetTelegrafMetrics()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range ms[o.seen:] {
		if mode == "accept" {
			o.written = append(o.written, m.(telegraf.UnwrappableMetric).Unwrap().Copy())
			m.Accept()
		} else {
			m.Reject()
		}
	}
	o.seen = len(ms)
}

func (o *outputs) Written() []telegraf.Metric {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.written)
}

func (o *outputs) close() {
	close(o.stop)
	<-o.done
}

// start runs the plugin on loopback with every preset, changed by edit.
func start(t *testing.T, k *keys, edit func(*MailWebhooks)) (*MailWebhooks, *outputs, string) {
	t.Helper()
	w := &MailWebhooks{
		ServiceAddress: "127.0.0.1:0",
		ReadTimeout:    telegrafconfig.Duration(10 * time.Second),
		WriteTimeout:   telegrafconfig.Duration(30 * time.Second),
		MaxBodySize:    telegrafconfig.Size(1 << 20),
		MaxInFlight:    8,
		AckTimeout:     telegrafconfig.Duration(10 * time.Second),
		Log:            testutil.Logger{},
	}
	// The port is known only once listening; Mandrill signs the URL, so
	// the mandrill provider is set up with a placeholder and fixed after.
	w.Providers = k.providers(t, "http://placeholder")
	if edit != nil {
		edit(w)
	}
	require.NoError(t, w.Init())
	o := newOutputs()
	require.NoError(t, w.Start(o))
	t.Cleanup(func() { w.Stop(); o.close() })
	base := "http://" + w.addr.String()
	for _, p := range w.Providers {
		if p.Preset == "mandrill" && !p.AllowUnsigned {
			p.verify = mandrill([]byte(k.mandrill), base+p.Path)
		}
	}
	return w, o, base
}

// provider returns the plugin's provider of a preset.
func provider(w *MailWebhooks, preset string) *Provider {
	for _, p := range w.Providers {
		if p.Preset == preset {
			return p
		}
	}
	return nil
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestProvidersSamples: every provider's published samples, signed as
// that provider signs them, POSTed to its path: each is answered 200 once
// its events were accepted, and the metrics are the preset's.
func TestProvidersSamples(t *testing.T) {
	k := newKeys(t)
	w, out, base := start(t, k, nil)
	want := 0
	for _, p := range w.Providers {
		requests, failures := p.st.requests.Get(), p.st.signatureFailures.Get()
		bodies, err := providertest.Bodies(p.Preset)
		require.NoError(t, err)
		for _, b := range bodies {
			code, msg := do(t, k.sign(t, p.Preset, base+p.Path, b.Data, time.Now()))
			require.Equal(t, http.StatusOK, code, "%s %s: %s", p.Preset, b.Name, msg)
			n, err := strconv.Atoi(strings.TrimPrefix(msg, "ok: ")[:strings.Index(strings.TrimPrefix(msg, "ok: "), " ")])
			require.NoError(t, err, msg)
			require.GreaterOrEqual(t, n, b.Events, "%s %s", p.Preset, b.Name)
			want += n
		}
		require.Equal(t, int64(len(bodies)), p.st.requests.Get()-requests, p.Name)
		require.Equal(t, failures, p.st.signatureFailures.Get(), p.Name)
	}
	written := out.Written()
	require.Len(t, written, want)
	mailers := map[string]int{}
	for _, m := range written {
		mailer, _ := m.GetTag("mailer")
		mailers[mailer]++
		require.Equal(t, "mail_event", m.Name())
	}
	require.Len(t, mailers, 6, "every provider: %v", mailers)
}

// TestRefused: unsigned, tampered, replayed and stale requests are
// answered 401 or 403, counted, and never become metrics.
func TestRefused(t *testing.T) {
	k := newKeys(t)
	w, out, base := start(t, k, nil)
	byPreset := map[string]*Provider{}
	for _, p := range w.Providers {
		byPreset[p.Preset] = p
	}
	sample := func(preset string) []byte {
		bodies, err := providertest.Bodies(preset)
		require.NoError(t, err)
		return bodies[0].Data
	}
	// What each scheme signs, changed after signing: the body (SendGrid,
	// Mandrill, SNS), the token (Mailgun signs timestamp and token, not
	// the body), or the password (basic auth).
	tamper := func(req *http.Request) *http.Request {
		if _, _, basic := req.BasicAuth(); basic {
			req.SetBasicAuth(k.user, "guess")
			return req
		}
		b, _ := io.ReadAll(req.Body)
		if i := bytes.Index(b, []byte(`"token":"`)); i >= 0 {
			b[i+9] ^= 1
		} else {
			b = bytes.Replace(b, []byte("example"), []byte("exampl3"), 1)
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		return req
	}
	unsigned := func(preset string) *http.Request {
		req, err := http.NewRequest(http.MethodPost, base+byPreset[preset].Path, bytes.NewReader(sample(preset)))
		require.NoError(t, err)
		return req
	}
	now := time.Now()
	for _, preset := range mailevent.PresetNames() {
		p := byPreset[preset]
		t.Run(preset, func(t *testing.T) {
			failures := p.st.signatureFailures.Get()
			code, _ := do(t, unsigned(preset))
			require.Equal(t, http.StatusUnauthorized, code, "unsigned")
			code, _ = do(t, tamper(k.sign(t, preset, base+p.Path, sample(preset), now)))
			require.Equal(t, http.StatusForbidden, code, "tampered")
			require.Equal(t, int64(2), p.st.signatureFailures.Get()-failures)
		})
	}
	t.Run("mailgun replay", func(t *testing.T) {
		p := byPreset["mailgun"]
		req := k.sign(t, "mailgun", base+p.Path, sample("mailgun"), now)
		body, _ := io.ReadAll(req.Body)
		send := func() int {
			r, _ := http.NewRequest(http.MethodPost, base+p.Path, bytes.NewReader(body))
			code, _ := do(t, r)
			return code
		}
		require.Equal(t, http.StatusOK, send())
		require.Equal(t, http.StatusForbidden, send(), "the same token again is a replay")
		stale := k.sign(t, "mailgun", base+p.Path, sample("mailgun"), now.Add(-time.Hour))
		code, _ := do(t, stale)
		require.Equal(t, http.StatusForbidden, code, "signed an hour ago, outside replay_window")
	})
	t.Run("sendgrid stale", func(t *testing.T) {
		p := byPreset["sendgrid"]
		code, _ := do(t, k.sign(t, "sendgrid", base+p.Path, sample("sendgrid"), now.Add(-time.Hour)))
		require.Equal(t, http.StatusForbidden, code)
	})
	t.Run("sns signed by another key", func(t *testing.T) {
		p := byPreset["ses_sns"]
		other := newKeys(t)
		code, _ := do(t, other.sign(t, "ses_sns", base+p.Path, sample("ses_sns"), now))
		require.Equal(t, http.StatusForbidden, code)
	})
	// A request emits its events before it is answered: every answer is
	// in, so this is all that was emitted.
	require.Len(t, out.GetTelegrafMetrics(), 1, "only the first mailgun request")
}

// TestOutputsDown: a request whose events the outputs refuse, or do not
// take within ack_timeout, is answered 503; sent again once they are back
// (Mailgun's retry keeps its token), it is answered 200.
func TestOutputsDown(t *testing.T) {
	k := newKeys(t)
	w, out, base := start(t, k, func(w *MailWebhooks) { w.AckTimeout = telegrafconfig.Duration(300 * time.Millisecond) })
	mg := provider(w, "mailgun")
	failed := mg.st.failed.Get()
	bodies, err := providertest.Bodies("mailgun")
	require.NoError(t, err)
	req := k.sign(t, "mailgun", base+mg.Path, bodies[2].Data, time.Now())
	body, _ := io.ReadAll(req.Body)
	send := func() (int, string) {
		r, _ := http.NewRequest(http.MethodPost, base+mg.Path, bytes.NewReader(body))
		return do(t, r)
	}

	out.mode.Store("reject")
	code, msg := send()
	require.Equal(t, http.StatusServiceUnavailable, code, msg)
	require.Contains(t, msg, "refused")

	out.mode.Store("hold")
	code, msg = send()
	require.Equal(t, http.StatusServiceUnavailable, code, msg)
	require.Contains(t, msg, "ack_timeout")

	out.mode.Store("accept")
	code, msg = send()
	require.Equal(t, http.StatusOK, code, msg)
	require.Equal(t, int64(2), mg.st.failed.Get()-failed)
	require.Eventually(t, func() bool { return len(out.Written()) == 2 }, 5*time.Second, 5*time.Millisecond,
		"the held metric, written late, and the retry's: the same point twice, which InfluxDB keeps once")
	written := out.Written()
	require.Equal(t, written[0].Time(), written[1].Time())
	require.Equal(t, written[0].Fields(), written[1].Fields())
}

// TestLimits: bodies over max_body_size get 413, requests over
// max_in_flight 503, other methods 405; HEAD is answered (Mandrill checks
// the URL); SparkPost's test batch is answered 200 without metrics; a body
// with no good event gets 400.
func TestLimits(t *testing.T) {
	k := newKeys(t)
	w, out, base := start(t, k, func(w *MailWebhooks) {
		w.MaxBodySize = 4096
		w.MaxInFlight = 1
	})
	path := map[string]string{}
	for _, p := range w.Providers {
		path[p.Preset] = base + p.Path
	}
	big := `[` + strings.Repeat(`{"email":"a@example.com","event":"delivered","timestamp":1513299569},`, 100) + `{}]`
	code, _ := do(t, k.sign(t, "sendgrid", path["sendgrid"], []byte(big), time.Now()))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	req, _ := http.NewRequest(http.MethodPut, path["postmark"], nil)
	code, _ = do(t, req)
	require.Equal(t, http.StatusMethodNotAllowed, code)
	req, _ = http.NewRequest(http.MethodHead, path["mandrill"], nil)
	code, _ = do(t, req)
	require.Equal(t, http.StatusOK, code)

	code, msg := do(t, k.sign(t, "sparkpost", path["sparkpost"], []byte(`[{"msys":{}}]`), time.Now()))
	require.Equal(t, http.StatusOK, code, msg)
	code, msg = do(t, k.sign(t, "sendgrid", path["sendgrid"], []byte(`[{"email":"a@example.com","timestamp":"yesterday"}]`), time.Now()))
	require.Equal(t, http.StatusBadRequest, code, msg)
	require.Contains(t, msg, "bad_time")

	// One request waits for the held outputs; the next finds no slot.
	out.mode.Store("hold")
	bodies, err := providertest.Bodies("postmark")
	require.NoError(t, err)
	first := make(chan int)
	go func() {
		c, _ := do(t, k.sign(t, "postmark", path["postmark"], bodies[0].Data, time.Now()))
		first <- c
	}()
	require.Eventually(t, func() bool { return len(out.GetTelegrafMetrics()) == 1 }, 5*time.Second, time.Millisecond)
	code, _ = do(t, k.sign(t, "postmark", path["postmark"], bodies[1].Data, time.Now()))
	require.Equal(t, http.StatusServiceUnavailable, code, "max_in_flight = 1 is taken")
	out.mode.Store("accept")
	require.Equal(t, http.StatusOK, <-first)
}

// TestSNSSubscription: a signed SubscriptionConfirmation is logged, or
// confirmed by visiting its SubscribeURL only where it is SNS's and
// sns_subscribe_urls allows; it never becomes a metric.
func TestSNSSubscription(t *testing.T) {
	k := newKeys(t)
	aws := newFakeSNS(t, k)
	confirmation := func(subscribeURL string) []byte {
		b, err := json.Marshal(map[string]string{
			"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
			"Token": "2336412f37", "TopicArn": snsTopic,
			"Message":      "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
			"SubscribeURL": subscribeURL, "Timestamp": "2012-04-26T20:45:04.751Z",
		})
		require.NoError(t, err)
		return b
	}
	for _, mode := range []string{"log", "confirm"} {
		t.Run(mode, func(t *testing.T) {
			aws.confirms.Store(0)
			w, out, base := start(t, k, func(w *MailWebhooks) {
				for _, p := range w.Providers {
					p.SNSSubscribe = mode
					p.SNSSubscribeURLs = []string{"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription*"}
				}
			})
			aws.use(provider(w, "ses_sns"))
			path := base + provider(w, "ses_sns").Path
			for _, u := range []string{
				"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + snsTopic + "&Token=2336412f37",
				"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37",    // not allowed
				"https://sns.us-west-2.amazonaws.com.evil.example/?Action=ConfirmSubscription",        // not SNS
				"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&Token=2336412f37",            // not a confirmation
				"http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37",     // not https
				"https://sns.us-west-2.amazonaws.com:8443/?Action=ConfirmSubscription&Token=2336412f", // a port
			} {
				code, _ := do(t, k.sign(t, "ses_sns", path, confirmation(u), time.Now()))
				require.Equal(t, http.StatusOK, code, "answered, visited only if allowed: %s", u)
			}
			want := int32(0)
			if mode == "confirm" {
				want = 1
			}
			require.Equal(t, want, aws.confirms.Load())
			require.Empty(t, out.GetTelegrafMetrics())
		})
	}
}

// TestSNSCertificateURL: with sns_certificate_urls, the certificate a
// message names is fetched once from an allowed SNS address; a message
// naming another address is refused without fetching anything.
func TestSNSCertificateURL(t *testing.T) {
	k := newKeys(t)
	aws := newFakeSNS(t, k)
	w, out, base := start(t, k, func(w *MailWebhooks) {
		p := provider(w, "ses_sns")
		p.SNSCertificates = nil
		p.SNSCertificateURLs = []string{"https://sns.*.amazonaws.com/SimpleNotificationService-*.pem"}
	})
	aws.use(provider(w, "ses_sns"))
	path := base + provider(w, "ses_sns").Path
	bodies, err := providertest.Bodies("ses_sns")
	require.NoError(t, err)
	for _, b := range bodies[:3] {
		code, msg := do(t, k.sign(t, "ses_sns", path, withCertURL(t, b.Data, "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-abc.pem"), time.Now()))
		require.Equal(t, http.StatusOK, code, msg)
	}
	require.Equal(t, int32(1), aws.requests.Load(), "fetched once, then kept")
	code, _ := do(t, k.sign(t, "ses_sns", path, withCertURL(t, bodies[0].Data, "http://198.51.100.1/evil.pem"), time.Now()))
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, int32(1), aws.requests.Load())
	require.Len(t, out.Written(), 3)
}

// withCertURL is an SNS envelope naming another SigningCertURL.
func withCertURL(t *testing.T, body []byte, u string) []byte {
	t.Helper()
	var doc map[string]string
	require.NoError(t, json.Unmarshal(body, &doc))
	doc["SigningCertURL"] = u
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

// TestTLS: with tls_cert and tls_key, the receiver speaks HTTPS.
func TestTLS(t *testing.T) {
	k := newKeys(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	cert, keyFile, err := providertest.WriteCertificate(t.TempDir(), key)
	require.NoError(t, err)
	w, _, _ := start(t, k, func(w *MailWebhooks) { w.TLSCert, w.TLSKey = cert, keyFile })
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(cert)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	bodies, err := providertest.Bodies("postmark")
	require.NoError(t, err)
	req := k.sign(t, "postmark", "https://"+w.addr.String()+"/postmark", bodies[1].Data, time.Now())
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestInit(t *testing.T) {
	k := newKeys(t)
	tests := []struct {
		name string
		edit func(*MailWebhooks)
		err  string
	}{
		{"no provider", func(w *MailWebhooks) { w.Providers = nil }, `no "provider" configured`},
		{"unknown preset", func(w *MailWebhooks) { w.Providers[0].Preset = "mailchimp" }, `invalid "preset" value "mailchimp"`},
		{"mailgun without its key", func(w *MailWebhooks) { w.Providers[0].SigningKey = telegrafconfig.NewSecret(nil) },
			`provider 1 (mailgun): preset "mailgun": set "signing_key"`},
		{"sendgrid without its key", func(w *MailWebhooks) {
			w.Providers = []*Provider{{Mapping: mailevent.Mapping{Preset: "sendgrid"}}}
		}, `set "verification_key"`},
		{"sendgrid with a bad key", func(w *MailWebhooks) {
			w.Providers = []*Provider{{Mapping: mailevent.Mapping{Preset: "sendgrid"}, VerificationKey: "bm90IGEga2V5"}}
		}, `invalid "verification_key" value`},
		{"postmark without basic auth", func(w *MailWebhooks) {
			w.Providers = []*Provider{{Mapping: mailevent.Mapping{Preset: "postmark"}}}
		}, `set "username" and "password"`},
		{"ses_sns without certificates", func(w *MailWebhooks) {
			w.Providers = []*Provider{{Mapping: mailevent.Mapping{Preset: "ses_sns"}}}
		}, `set "sns_certificates" or "sns_certificate_urls"`},
		{"confirm without allowed URLs", func(w *MailWebhooks) {
			provider(w, "ses_sns").SNSSubscribe = "confirm"
		}, `"sns_subscribe" = "confirm" needs "sns_subscribe_urls"`},
		{"ses_sns without topics", func(w *MailWebhooks) { provider(w, "ses_sns").SNSTopicARNs = nil }, `preset "ses_sns": set "sns_topic_arns"`},
		{"ses_sns with a topic that is no ARN", func(w *MailWebhooks) { provider(w, "ses_sns").SNSTopicARNs = []string{"MyTopic"} },
			`invalid "sns_topic_arns" value "MyTopic"`},
		{"a certificate URL that is not SNS's", func(w *MailWebhooks) {
			provider(w, "ses_sns").SNSCertificateURLs = []string{"https://*.amazonaws.com/*.pem"}
		}, `invalid "sns_certificate_urls" value "https://*.amazonaws.com/*.pem"`},
		{"a subscribe URL that is not SNS's", func(w *MailWebhooks) {
			p := provider(w, "ses_sns")
			p.SNSSubscribe, p.SNSSubscribeURLs = "confirm", []string{"http://sns.*"}
		}, `invalid "sns_subscribe_urls" value "http://sns.*"`},
		{"an unknown signature version", func(w *MailWebhooks) { provider(w, "ses_sns").SNSSignatureVersions = []string{"3"} },
			`invalid "sns_signature_versions" value "3"`},
		{"read_timeout 0", func(w *MailWebhooks) { w.ReadTimeout = 0 }, `invalid "read_timeout" value "0s"`},
		{"a negative replay_window", func(w *MailWebhooks) {
			d := telegrafconfig.Duration(-time.Minute)
			provider(w, "mailgun").ReplayWindow = &d
		}, `provider 1 (mailgun): invalid "replay_window" value "-1m0s"`},
		{"max_message_size beside max_body_size", func(w *MailWebhooks) { provider(w, "sendgrid").MaxMessageSize = 512 << 10 },
			`invalid "max_message_size" value 524288: a body is decoded whole, set "max_body_size" instead`},
		{"replay_window 0 turns it off", func(w *MailWebhooks) {
			var d telegrafconfig.Duration
			provider(w, "mailgun").ReplayWindow = &d
		}, ""},
		{"two providers on one path", func(w *MailWebhooks) { w.Providers[1].Path = "/mailgun" }, `invalid "path" value "/mailgun": another provider has it`},
		{"write_timeout below ack_timeout", func(w *MailWebhooks) { w.WriteTimeout = telegrafconfig.Duration(time.Second) }, `invalid "write_timeout" value 1s`},
		{"a bad mapping option", func(w *MailWebhooks) { w.Providers[0].TimeFill = "x" }, `invalid "time_fill" value "x"`},
		{"unsigned allowed", func(w *MailWebhooks) {
			w.Providers = []*Provider{{Mapping: mailevent.Mapping{Preset: "postmark"}, AllowUnsigned: true}}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &MailWebhooks{ServiceAddress: "127.0.0.1:0", MaxBodySize: 1 << 20, MaxInFlight: 1, ReadTimeout: telegrafconfig.Duration(10 * time.Second),
				AckTimeout: telegrafconfig.Duration(10 * time.Second), WriteTimeout: telegrafconfig.Duration(30 * time.Second), Log: testutil.Logger{}}
			w.Providers = k.providers(t, "http://x")
			tt.edit(w)
			err := w.Init()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}

func TestSampleConfigLoads(t *testing.T) {
	t.Setenv("MAILGUN_WEBHOOK_SIGNING_KEY", "key-x")
	w := plugintest.SampleConfigLoads(t, sampleConfig).(*MailWebhooks)
	require.Equal(t, "/mailgun", w.Providers[0].Path)
	require.Equal(t, "mail_event", w.Providers[0].Measurement, "defaults fill what the table leaves out")
}

// TestSlowOutputs: outputs slower than ack_timeout. Each request gives up,
// but its events stay in Telegraf's buffer until the outputs take them:
// no more groups than max_in_flight may wait there, or Telegraf panics
// ("channel is full") when the outputs recover and deliver them at once,
// or at the final flush, after the plugin stopped reading. Requests
// beyond are answered 503 busy, and resent by the provider.
func TestSlowOutputs(t *testing.T) {
	k := newKeys(t)
	w, out, base := start(t, k, func(w *MailWebhooks) {
		w.MaxInFlight = 2
		w.AckTimeout = telegrafconfig.Duration(200 * time.Millisecond)
	})
	mg := provider(w, "mailgun")
	bodies, err := providertest.Bodies("mailgun")
	require.NoError(t, err)
	send := func() (int, string) { // signed anew: a token of its own
		return do(t, k.sign(t, "mailgun", base+mg.Path, bodies[2].Data, time.Now()))
	}

	out.mode.Store("hold")
	var timedOut, busy int
	for range 6 {
		code, msg := send()
		require.Equal(t, http.StatusServiceUnavailable, code, msg)
		switch {
		case strings.Contains(msg, "ack_timeout"):
			timedOut++
		case strings.Contains(msg, "busy"):
			busy++
		}
	}
	require.Equal(t, 2, timedOut, "max_in_flight groups wait for the outputs")
	require.Equal(t, 4, busy, "the others are turned away before a group is made")

	out.mode.Store("accept") // the outputs recover: both groups delivered at once, no panic
	require.Eventually(t, func() bool { return len(out.Written()) == 2 }, 5*time.Second, 5*time.Millisecond)
	code, msg := send()
	require.Equal(t, http.StatusOK, code, msg, "the slots are free again")

	// Held again, then the plugin stops: the outputs' final flush delivers
	// what they hold after the plugin stopped reading.
	out.mode.Store("hold")
	for range 3 {
		code, msg := send()
		require.Equal(t, http.StatusServiceUnavailable, code, msg)
	}
	w.Stop()
	out.mode.Store("accept")
	require.Eventually(t, func() bool { return len(out.Written()) == 5 }, 5*time.Second, 5*time.Millisecond,
		"the held groups delivered after Stop, into room Telegraf has")
}
