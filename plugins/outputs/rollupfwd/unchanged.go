package rollupfwd

import (
	"hash/maphash"
	"math"
	"time"

	"github.com/influxdata/telegraf"
)

// unchanged remembers, for each point spooled lately, a digest of its
// values, so that a point written again with the same values is not
// spooled again. Kapacitor's batch tasks write every window of their
// period on every run (a 1m window five times, a month's histogram every
// hour for two months), and the reconciler writes again the windows it
// recomputed: most of what reaches Write is already on its way to
// central with these values.
//
// Skipping them changes nothing central ends up with: a point is skipped
// only when the last point spooled with the same series and time had the
// same values, and the spool delivers in order. What is forgotten is
// only sent again. Memory is two generations of 64-bit digests: a point
// is remembered from ttl/2 to ttl after it was last written, and a
// generation that reaches max/2 points is retired early.
type unchanged struct {
	seed      maphash.Seed
	cur, prev map[uint64]uint64
	ttl       time.Duration
	max       int
	rotated   time.Time
	now       func() time.Time
}

func newUnchanged(ttl time.Duration, max int) *unchanged {
	u := &unchanged{seed: maphash.MakeSeed(), ttl: ttl, max: max, now: time.Now}
	u.forget()
	return u
}

// forget drops everything remembered: what comes next is spooled
// whatever it was before (the spool lost records, which central may then
// lack).
func (u *unchanged) forget() {
	u.cur, u.prev = map[uint64]uint64{}, map[uint64]uint64{}
	u.rotated = u.now()
}

// digest is the point's identity (name, tags, time) and a digest of its
// fields, whatever their order.
func (u *unchanged) digest(m telegraf.Metric) (key, values uint64) {
	var h maphash.Hash
	h.SetSeed(u.seed)
	h.WriteString(m.Name())
	for _, t := range m.TagList() { // sorted by key
		h.WriteByte(0)
		h.WriteString(t.Key)
		h.WriteByte(0)
		h.WriteString(t.Value)
	}
	h.WriteByte(0)
	writeUint(&h, uint64(m.Time().UnixNano()))
	key = h.Sum64()
	for _, f := range m.FieldList() {
		h.Reset()
		h.WriteString(f.Key)
		h.WriteByte(0)
		switch v := f.Value.(type) {
		case float64:
			h.WriteByte('f')
			writeUint(&h, math.Float64bits(v))
		case int64:
			h.WriteByte('i')
			writeUint(&h, uint64(v))
		case uint64:
			h.WriteByte('u')
			writeUint(&h, v)
		case string:
			h.WriteByte('s')
			h.WriteString(v)
		case bool:
			h.WriteByte('b')
			if v {
				h.WriteByte(1)
			}
		default: // not serializable: the serializer refuses the point anyway
			h.WriteByte('?')
		}
		values += h.Sum64() // order does not matter
	}
	return key, values
}

func writeUint(h *maphash.Hash, v uint64) {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	h.Write(b[:])
}

// seen tells whether the last point spooled with this key had these
// values.
func (u *unchanged) seen(key, values uint64) bool {
	if v, ok := u.cur[key]; ok {
		return v == values
	}
	if v, ok := u.prev[key]; ok && v == values {
		u.cur[key] = v // written again: remembered for another generation
		return true
	}
	return false
}

// remember records what was spooled.
func (u *unchanged) remember(key, values uint64) {
	if now := u.now(); now.Sub(u.rotated) >= u.ttl/2 || len(u.cur) >= u.max/2 {
		u.prev, u.cur, u.rotated = u.cur, make(map[uint64]uint64, len(u.cur)), now
	}
	u.cur[key] = values
}

// size is the number of points remembered.
func (u *unchanged) size() int { return len(u.cur) + len(u.prev) }
