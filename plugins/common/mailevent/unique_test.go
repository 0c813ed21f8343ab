package mailevent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRefuseDuplicateKeys: with RefuseDuplicateKeys, a key named twice in
// one object, at any depth, in any of the decoder's paths (flat events,
// the tree, newline-delimited lines, json_keys strings, a form field), is
// malformed; without it, the same bodies decode as before.
func TestRefuseDuplicateKeys(t *testing.T) {
	wide := make([]string, 0, 5001)
	for i := range 5000 {
		wide = append(wide, fmt.Sprintf(`"k%d":1`, i))
	}
	wide = append(wide, `"k4321":2`)
	tests := []struct {
		name   string
		edit   func(*Mapping)
		body   string
		reason string // "" when accepted
	}{
		{name: "flat event", body: `{"event":"delivered","event":"bounced","a":1}`, reason: ReasonMalformed},
		{name: "escaped the same", body: `{"event":"delivered","\u0065vent":"bounced","a":{"b":1}}`, reason: ReasonMalformed},
		{name: "nested", body: `{"event":"delivered","a":{"b":1,"c":{"d":1,"d":2}}}`, reason: ReasonMalformed},
		{name: "in a batch", body: `[{"event":"delivered","a":1},{"a":1,"a":[1]}]`, reason: ReasonMalformed},
		{name: "a wide object", body: "{" + strings.Join(wide, ",") + "}", reason: ReasonMalformed},
		{name: "ndjson lines", body: "{\"a\":1,\"a\":2}\n{\"b\":1,\"b\":2}", reason: ReasonMalformed},
		{
			name:   "inside a json_keys string",
			edit:   func(m *Mapping) { m.JSONKeys, m.EventsPath = []string{"Message"}, "Message" },
			body:   `{"Message":"{\"a\":1,\"a\":2}"}`,
			reason: ReasonMalformed,
		},
		{
			name:   "a form field sent twice",
			edit:   func(m *Mapping) { m.FormField = "mandrill_events" },
			body:   `mandrill_events=%5B%7B%22a%22%3A1%7D%5D&mandrill_events=%5B%5D`,
			reason: ReasonMalformedForm,
		},
		{name: "the same key in sibling objects", body: `[{"a":1,"b":{"a":1}},{"a":2}]`},
		{name: "case differs", body: `{"a":1,"A":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			strict := newDecoder(t, func(m *Mapping) {
				if tt.edit != nil {
					tt.edit(m)
				}
				m.RefuseDuplicateKeys = true
			})
			out := strict.Decode(NewScratch(), []byte(tt.body), receivedAt)
			if tt.reason == "" {
				require.Empty(t, out.Bad)
				require.NotEmpty(t, out.Metrics)
				return
			}
			require.Empty(t, out.Metrics)
			require.NotEmpty(t, out.Bad)
			require.Equal(t, tt.reason, out.Bad[len(out.Bad)-1].Reason())
			require.ErrorContains(t, out.Bad[len(out.Bad)-1].Err(), "named")

			lax := newDecoder(t, tt.edit).Decode(NewScratch(), []byte(tt.body), receivedAt)
			require.NotEmpty(t, lax.Metrics, "without the option, the body decodes")
		})
	}
}
