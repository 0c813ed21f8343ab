package report

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRange(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	tests := []struct {
		in       string
		from, to time.Time
		err      string
	}{
		{in: "2026-10", from: time.Date(2026, 10, 1, 0, 0, 0, 0, berlin), to: time.Date(2026, 11, 1, 0, 0, 0, 0, berlin)},
		{in: "2026-10-25", from: time.Date(2026, 10, 25, 0, 0, 0, 0, berlin), to: time.Date(2026, 10, 26, 0, 0, 0, 0, berlin)},
		{in: "2026-10-02..2026-10-11", from: time.Date(2026, 10, 2, 0, 0, 0, 0, berlin), to: time.Date(2026, 10, 11, 0, 0, 0, 0, berlin)},
		{in: "2026-10-02T13:37:00Z..2026-10-11", from: time.Date(2026, 10, 2, 13, 37, 0, 0, time.UTC), to: time.Date(2026, 10, 11, 0, 0, 0, 0, berlin)},
		{in: "2026-10-11..2026-10-02", err: `invalid range "2026-10-11..2026-10-02": it ends before it starts`},
		{in: "last week", err: `invalid range "last week": want YYYY-MM, YYYY-MM-DD or FROM..TO`},
		{in: "2026-10-02..soon", err: `"soon" is neither YYYY-MM-DD nor an RFC 3339 time`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseRange(tt.in, berlin)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.True(t, tt.from.Equal(r.From), "from %v", r.From)
			require.True(t, tt.to.Equal(r.To), "to %v", r.To)
		})
	}
	months, err := Months("2026-11", "2027-02", berlin)
	require.NoError(t, err)
	require.Len(t, months, 4)
	require.Equal(t, "2027-01", months[2].Name)
	_, err = Months("2026-11", "2026-10", berlin)
	require.ErrorContains(t, err, `invalid --months "2026-11..2026-10"`)
}

func TestEachGroupAndJSON(t *testing.T) {
	a := Range{Name: "a", From: time.Unix(0, 0), To: time.Unix(60, 0)}
	b := Range{Name: "b", From: time.Unix(60, 0), To: time.Unix(120, 0)}
	var got []string
	err := EachGroup([]Range{a, b}, func(r Range) (map[string]int, error) {
		if r.Name == "b" {
			return nil, nil
		}
		return map[string]int{"y\x00z": 2, "x\x00z": 1}, nil
	}, func() int { return 0 }, func(r Range, key string, n int) {
		got = append(got, fmt.Sprint(r.Name, GroupOf([]string{"dc", "customer"}, key), n))
	})
	require.NoError(t, err)
	require.Equal(t, []string{"amap[customer:z dc:x] 1", "amap[customer:z dc:y] 2", "bmap[] 0"}, got)

	err = EachGroup[int]([]Range{{Name: "c", From: b.To, To: a.From}}, nil, nil, nil)
	require.ErrorContains(t, err, `range "c": from`)

	var out strings.Builder
	require.NoError(t, WriteJSON[int](&out, nil))
	require.Equal(t, "[]\n", out.String())
}
