// Package trace answers the support question "what happened to this
// message": from one DC's database of raw events (where addresses may be
// in clear), the timeline of a message across its sources: the mailer's
// events (NSQ), the MTA's lines (correlated by queue id), the providers'
// webhook events (by message-id). `mailtick trace` prints it.
//
// A lookup is a scan: message_id, queue_id, recipient and sender are
// fields of mail_event, which InfluxDB 1.x does not index, so each query
// reads every event of the range (the README's mailtick trace: what it
// costs and what would carry it further).
package trace

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/influxq"
)

// Key is what a message is looked up by; at least one is set.
type Key struct {
	MessageID, QueueID, Recipient, Sender string
}

// Step is one event of the message.
type Step struct {
	Time      time.Time     `json:"time"`
	Since     time.Duration `json:"since_previous_ns"` // 0 for the first
	Event     string        `json:"event"`
	Mailer    string        `json:"mailer,omitempty"` // the MTA's host, the provider, the mailer
	Customer  string        `json:"customer,omitempty"`
	Direction string        `json:"direction,omitempty"`
	QueueID   string        `json:"queue_id,omitempty"`
	MessageID string        `json:"message_id,omitempty"`
	Sender    string        `json:"sender,omitempty"`
	Recipient string        `json:"recipient,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Response  string        `json:"smtp_response,omitempty"`
	Attempt   int64         `json:"attempt,omitempty"`
}

// Source is a DC database of raw events.
type Source struct {
	Querier  influxq.Querier
	Database string
	// MaxKeys bounds the queue ids and message-ids followed from what a
	// lookup finds (a sender's mail over a day has many): default 20.
	MaxKeys int
}

// Trace is the timeline of the messages key names in [from, to): the
// events that match it, then those of the queue ids and message-ids they
// carry (an MTA's accepted event has no recipient; a provider's webhook
// no queue id), oldest first.
func (s Source) Trace(k Key, from, to time.Time) ([]Step, error) {
	var conds []string
	for field, v := range map[string]string{"message_id": k.MessageID, "queue_id": k.QueueID, "recipient": k.Recipient, "sender": k.Sender} {
		if v != "" {
			conds = append(conds, match(field, v))
		}
	}
	if len(conds) == 0 {
		return nil, fmt.Errorf("nothing to look up: give a message-id, a queue id, a recipient or a sender")
	}
	sort.Strings(conds)
	found := map[string]Step{}
	steps, err := s.query(strings.Join(conds, " AND "), from, to)
	if err != nil {
		return nil, err
	}
	max := s.MaxKeys
	if max <= 0 {
		max = 20
	}
	// Queue ids are the MTA's own, reused in time: followed on the host
	// that logged them only.
	queues, ids := map[string]bool{}, map[string]bool{}
	if k.QueueID != "" {
		queues[k.QueueID] = true
	}
	if k.MessageID != "" {
		ids[bare(k.MessageID)] = true
	}
	var more []string
	for _, st := range steps {
		found[st.key()] = st
		if q := st.Mailer + " " + st.QueueID; st.QueueID != "" && !queues[st.QueueID] && !queues[q] && len(queues)+len(ids) < max {
			queues[q] = true
			more = append(more, "("+match("queue_id", st.QueueID)+` AND "mailer" = `+influxq.String(st.Mailer)+")")
		}
		if id := bare(st.MessageID); id != "" && !ids[id] && len(queues)+len(ids) < max {
			ids[id] = true
			more = append(more, match("message_id", id))
		}
	}
	if len(more) > 0 {
		steps, err := s.query("("+strings.Join(more, " OR ")+")", from, to)
		if err != nil {
			return nil, err
		}
		for _, st := range steps {
			found[st.key()] = st
		}
	}
	out := make([]Step, 0, len(found))
	for _, st := range found {
		out = append(out, st)
	}
	// Syslog's times are to the second (inputs.maillog spreads the
	// events of one second over it by a hash of their line): within a
	// second, the events go in the order of a message's life.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Time.Truncate(time.Second), out[j].Time.Truncate(time.Second)
		if !a.Equal(b) {
			return a.Before(b)
		}
		if ra, rb := lifeRank[out[i].Event], lifeRank[out[j].Event]; ra != rb {
			return ra < rb
		}
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].key() < out[j].key()
	})
	for i := 1; i < len(out); i++ {
		out[i].Since = out[i].Time.Sub(out[i-1].Time)
	}
	return out, nil
}

// lifeRank orders the events of one second: accepted first, then the
// attempts, then what comes after a delivery.
var lifeRank = map[string]int{"accepted": 0, "rejected": 1, "deferred": 2, "bounced": 3, "delivered": 3, "expired": 3,
	"dropped": 3, "failed": 3, "opened": 4, "clicked": 4, "complained": 5, "unsubscribed": 5}

// match is a condition on a string field. A message-id matches with or
// without its angle brackets (Postfix logs "<id>", mailers and providers
// mostly give the bare id).
func match(field, v string) string {
	if field != "message_id" {
		return `"` + field + `" = ` + influxq.String(v)
	}
	id := bare(v)
	return `("message_id" = ` + influxq.String(id) + ` OR "message_id" = ` + influxq.String("<"+id+">") + `)`
}

func bare(id string) string { return strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">") }

func (st Step) key() string {
	return fmt.Sprintf("%d %s %s %s %s", st.Time.UnixNano(), st.Event, st.Mailer, st.Recipient, st.QueueID)
}

// MaxSteps bounds the events one query returns: a sender's mail over
// months is no message's timeline.
const MaxSteps = 10000

// ErrTooMany is what Trace's error wraps when a query matched more than
// MaxSteps events.
var ErrTooMany = errors.New("too many events")

// query reads the events of [from, to) where cond holds.
func (s Source) query(cond string, from, to time.Time) ([]Step, error) {
	q := fmt.Sprintf(`SELECT * FROM "mail_event" WHERE time >= %d AND time < %d AND %s LIMIT %d`, from.UnixNano(), to.UnixNano(), cond, MaxSteps+1)
	series, err := s.Querier.Query(s.Database, q)
	if err != nil {
		return nil, err
	}
	var out []Step
	for _, sr := range series {
		col := map[string]int{}
		for i, c := range sr.Columns {
			col[c] = i
		}
		for _, row := range sr.Values {
			str := func(name string) string {
				if i, ok := col[name]; ok && row[i] != nil {
					return fmt.Sprint(row[i])
				}
				return ""
			}
			ns, err := row[0].(json.Number).Int64()
			if err != nil {
				return nil, fmt.Errorf("%s: time %v: %w", q, row[0], err)
			}
			st := Step{Time: time.Unix(0, ns).UTC(), Event: str("event"), Mailer: str("mailer"), Customer: str("customer"),
				Direction: str("direction"), QueueID: str("queue_id"), MessageID: str("message_id"), Sender: str("sender"),
				Recipient: str("recipient"), Reason: str("reason"), Response: str("smtp_response")}
			if i, ok := col["attempt"]; ok {
				if a, ok := row[i].(json.Number); ok {
					st.Attempt, _ = a.Int64()
				}
			}
			out = append(out, st)
		}
	}
	if len(out) > MaxSteps {
		return nil, fmt.Errorf("%w: more than %d match (narrow the range, or add a key)", ErrTooMany, MaxSteps)
	}
	return out, nil
}

// Write prints the timeline as text: one line a step, the time since the
// previous one, where it happened and what.
func Write(w io.Writer, steps []Step) error {
	if len(steps) == 0 {
		_, err := fmt.Fprintln(w, "no event of such a message in the range")
		return err
	}
	for _, st := range steps {
		since := ""
		if st.Since > 0 {
			since = "+" + st.Since.Round(time.Millisecond).String()
		}
		where := st.Mailer
		if st.Customer != "" {
			where += " (" + st.Customer + ")"
		}
		what := st.Event
		if st.Reason != "" {
			what += " (" + st.Reason + ")"
		}
		detail := strings.TrimSpace(strings.Join([]string{st.Recipient, st.Response}, " "))
		if _, err := fmt.Fprintf(w, "%s %10s  %-22s %-18s %-14s %s\n", st.Time.Format("2006-01-02T15:04:05.000Z"), since, where, what, st.QueueID, detail); err != nil {
			return err
		}
	}
	return nil
}
