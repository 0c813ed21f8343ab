package gen

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSameSeedSameEvents(t *testing.T) {
	// A fixed start: with the default (now), two generators made a
	// millisecond apart would differ by their times alone.
	start := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	cfg := Config{Seed: 3, Bad: 0.2, Start: start}
	a, err := New(cfg)
	require.NoError(t, err)
	b, err := New(cfg)
	require.NoError(t, err)
	c, err := New(Config{Seed: 4, Bad: 0.2, Start: start})
	require.NoError(t, err)
	differs := false
	for i := 0; i < 500; i++ {
		ma, mb, mc := a.Next(), b.Next(), c.Next()
		require.Equal(t, ma, mb)
		differs = differs || string(ma.Body) != string(mc.Body)
	}
	require.True(t, differs, "another seed must give other events")
}

func TestKinds(t *testing.T) {
	g, err := New(Config{Seed: 1, Bad: 0.5})
	require.NoError(t, err)
	seen := map[Kind]int{}
	var last Message
	for i := 0; i < 4000; i++ {
		m := g.Next()
		seen[m.Kind]++
		var ev map[string]any
		err := json.Unmarshal(m.Body, &ev)
		switch m.Kind {
		case Malformed:
			require.Error(t, err)
		case MissingTime:
			require.NoError(t, err)
			require.NotContains(t, ev, "time")
		case Oversized:
			require.Greater(t, len(m.Body), 512*1024)
		case Good:
			require.NoError(t, err)
			require.Equal(t, m.Event.Sender, ev["sender"])
			if m.Event.Event != "delivered" { // every other reply quotes an address
				r := m.Event.SMTPResponse
				require.True(t, strings.Contains(r, m.Event.Recipient) || strings.Contains(r, m.Event.SenderIP), "PII inside free text: %q", r)
			}
			if !last.Time.IsZero() {
				require.True(t, m.Time.After(last.Time), "event times strictly increase")
			}
			last = m
		}
	}
	require.InDelta(t, 2000, seen[Good], 150)
	for _, k := range BadKinds {
		require.InDelta(t, 500, seen[k], 100, "kind %s", k)
	}
}

func TestValidate(t *testing.T) {
	_, err := New(Config{Bad: 1.5})
	require.ErrorContains(t, err, "invalid bad fraction 1.5")
	_, err = New(Config{Count: -1})
	require.ErrorContains(t, err, "invalid count -1")
}
