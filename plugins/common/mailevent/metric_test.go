package mailevent

import (
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"
)

// eventMetric behaves as Telegraf's metric under the same operations:
// tag order, field order, replacement, removal, value conversion, the
// hashes, and a Copy that does not share what the original changes later.
func TestEventMetricAsTelegrafs(t *testing.T) {
	tm := time.Unix(1700000000, 123)
	ours := telegraf.Metric(newEventMetric("mail_event", tm, 3)) // fewer field slots than fields: overflow too
	theirs := metric.New("mail_event", nil, nil, tm)
	ops := []func(m telegraf.Metric){
		func(m telegraf.Metric) { m.AddTag("mailer", "mx1") },
		func(m telegraf.Metric) { m.AddTag("dc", "dc1") },
		func(m telegraf.Metric) { m.AddTag("event", "bounced") },
		func(m telegraf.Metric) { m.AddTag("dc", "dc2") },
		func(m telegraf.Metric) { m.AddField("sender", "a@example.org") },
		func(m telegraf.Metric) { m.AddField("latency_ms", 36.8) },
		func(m telegraf.Metric) { m.AddField("attempt", 3) }, // int: int64
		func(m telegraf.Metric) { m.AddField("size", uint32(7)) },
		func(m telegraf.Metric) { m.AddField("ok", true) },
		func(m telegraf.Metric) { m.AddField("latency_ms", 40.0) },
		func(m telegraf.Metric) { m.RemoveField("ok") },
		func(m telegraf.Metric) { m.RemoveTag("mailer") },
		func(m telegraf.Metric) { m.AddTag("a", "first") },
		func(m telegraf.Metric) { m.SetName("renamed"); m.AddPrefix("p_"); m.AddSuffix("_s") },
		func(m telegraf.Metric) { m.SetType(telegraf.Counter) },
	}
	for _, op := range ops {
		op(ours)
		op(theirs)
		require.Equal(t, tagsOf(theirs), tagsOf(ours))
		require.Equal(t, fieldsOf(theirs), fieldsOf(ours))
		require.Equal(t, theirs.HashID(), ours.HashID())
		require.Equal(t, theirs.HashIDWithFieldsFiltered([]string{"dc"}, []string{"sender"}), ours.HashIDWithFieldsFiltered([]string{"dc"}, []string{"sender"}))
		require.Equal(t, theirs.HashIDWithFieldsFiltered(nil, nil), ours.HashIDWithFieldsFiltered(nil, nil))
	}
	require.Equal(t, theirs.Name(), ours.Name())
	require.Equal(t, theirs.Tags(), ours.Tags())
	require.Equal(t, theirs.Fields(), ours.Fields())
	require.Equal(t, theirs.Type(), ours.Type())
	require.Equal(t, theirs.Time(), ours.Time())
	v, ok := ours.GetField("attempt")
	require.True(t, ok)
	require.Equal(t, int64(3), v)
	require.True(t, ours.HasTag("event"))
	require.False(t, ours.HasField("ok"))

	c := ours.Copy()
	ours.AddTag("event", "changed")
	ours.AddField("sender", "changed")
	got, _ := c.GetTag("event")
	require.Equal(t, "bounced", got)
	f, _ := c.GetField("sender")
	require.Equal(t, "a@example.org", f)
	require.Equal(t, theirs.HashID(), c.HashID())
}

func tagsOf(m telegraf.Metric) (out []telegraf.Tag) {
	for _, t := range m.TagList() {
		out = append(out, *t)
	}
	return out
}

func fieldsOf(m telegraf.Metric) (out []telegraf.Field) {
	for _, f := range m.FieldList() {
		out = append(out, *f)
	}
	return out
}
