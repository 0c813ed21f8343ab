package bounce

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sisimaiCase is one of Sisimai's own test expectations
// (testdata/sisimai/diagnostics.tsv, see SOURCES.md there).
type sisimaiCase struct {
	reason, status, rhost, text, source string
	code                                int
}

func sisimaiCases(t testing.TB) []sisimaiCase {
	t.Helper()
	f, err := os.Open("testdata/sisimai/diagnostics.tsv")
	require.NoError(t, err)
	defer f.Close()
	var out []sisimaiCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 0; sc.Scan(); line++ {
		if line == 0 {
			continue // the header
		}
		c := strings.Split(sc.Text(), "\t")
		require.Len(t, c, 6, "line %d", line+1)
		code, _ := strconv.Atoi(c[2])
		out = append(out, sisimaiCase{reason: c[0], status: c[1], code: code, rhost: c[3], text: c[4], source: c[5]})
	}
	require.NoError(t, sc.Err())
	return out
}

// minAgreement is the share of Sisimai's expectations Classify must agree
// with: what it agreed with when the classifier was written, so that a
// change that classifies worse fails.
const minAgreement = 0.78

// TestSisimaiExpectations classifies every case of Sisimai's own tests
// and compares with the reason Sisimai expects: precision and recall per
// reason are printed, and every disagreement listed.
func TestSisimaiExpectations(t *testing.T) {
	cases := sisimaiCases(t)
	require.NotEmpty(t, cases)
	type tally struct{ truePos, predicted, expected int }
	per := map[string]*tally{}
	get := func(r string) *tally {
		if per[r] == nil {
			per[r] = &tally{}
		}
		return per[r]
	}
	agree := 0
	var wrong []string
	for _, c := range cases {
		got := Classify(Input{Event: "bounced", Code: c.code, Status: c.status, Text: c.text, RemoteHost: c.rhost})
		get(c.reason).expected++
		get(got).predicted++
		if got == c.reason {
			agree++
			get(got).truePos++
			continue
		}
		wrong = append(wrong, fmt.Sprintf("  want %-15s got %-15s %s  (%s)", c.reason, got, c.text, c.source))
	}
	reasons := make([]string, 0, len(per))
	for r := range per {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %9s %9s %9s\n", "reason", "expected", "precision", "recall")
	for _, r := range reasons {
		p := per[r]
		prec, rec := "-", "-"
		if p.predicted > 0 {
			prec = fmt.Sprintf("%.3f", float64(p.truePos)/float64(p.predicted))
		}
		if p.expected > 0 {
			rec = fmt.Sprintf("%.3f", float64(p.truePos)/float64(p.expected))
		}
		fmt.Fprintf(&b, "%-16s %9d %9s %9s\n", r, p.expected, prec, rec)
	}
	share := float64(agree) / float64(len(cases))
	fmt.Fprintf(&b, "agreement: %d of %d (%.3f)\n", agree, len(cases), share)
	slices.Sort(wrong)
	t.Logf("Classify against Sisimai's expectations (Sisimai %s):\n%s\ndisagreements:\n%s", sisimaiCommit[:12], b.String(), strings.Join(wrong, "\n"))
	require.GreaterOrEqual(t, share, minAgreement, "agreement with Sisimai's expectations fell")
}

// BenchmarkClassify classifies Sisimai's test texts (a case per op) and
// reports the share of them no rule classifies (onhold or undefined):
// the unclassified figure of `make bench`.
func BenchmarkClassify(b *testing.B) {
	cases := sisimaiCases(b)
	in := make([]Input, len(cases))
	unclassified := 0
	for i, c := range cases {
		in[i] = Input{Event: "bounced", Code: c.code, Status: c.status, Text: c.text, RemoteHost: c.rhost}
		if Unclassified(Classify(in[i])) {
			unclassified++
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Classify(in[i%len(in)])
	}
	b.ReportMetric(100*float64(unclassified)/float64(len(cases)), "%unclassified")
}

// TestMatcherAsContains: the one-pass matcher finds what strings.Contains
// and an in-order search find, reason by reason, on every Sisimai text
// and on the message strings themselves.
func TestMatcherAsContains(t *testing.T) {
	var texts []string
	for _, c := range sisimaiCases(t) {
		texts = append(texts, strings.ToLower(c.text))
	}
	for _, ms := range messages {
		texts = append(texts, ms.index...)
		for _, p := range ms.pairs {
			rev := slices.Clone(p)
			slices.Reverse(rev)
			texts = append(texts, strings.Join(p, " "), strings.Join(rev, ""))
		}
	}
	for _, text := range texts {
		f := fact{text: text, reasons: reasonsOf(patterns.find(text))}
		for reason, ms := range messages {
			want := false
			for _, s := range ms.index {
				want = want || strings.Contains(text, s)
			}
			for _, p := range ms.pairs {
				want = want || inOrder(text, p)
			}
			require.Equal(t, want, f.match(reason), "%s in %q", reason, text)
		}
	}
}

// inOrder reports whether text holds every string of p, in order, each
// after the one before: Sisimai's Aligned.
func inOrder(text string, p []string) bool {
	for _, s := range p {
		i := strings.Index(text, s)
		if i < 0 {
			return false
		}
		text = text[i+len(s):]
	}
	return true
}
