//revive:disable-next-line:var-naming Telegraf's plugin folders are named as the plugins
package exim_queue

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/mailtick/mailtick/internal/testutil/plugintest"
)

func TestSampleConfigLoads(t *testing.T) {
	plugintest.SampleConfigLoads(t, sampleConfig)
}

func TestInit(t *testing.T) {
	e := &EximQueue{MaxMessages: 1}
	require.ErrorContains(t, e.Init(), `"spool_directory" must be set`)
	e.SpoolDirectory, e.MaxMessages = "/var/spool/exim4", 0
	require.ErrorContains(t, e.Init(), `invalid "max_messages" value 0`)
}

// gather gathers spool at now, its points by state.
func gather(t *testing.T, spool string, now time.Time, set func(*EximQueue)) (map[string]map[string]any, []error) {
	t.Helper()
	e := inputs.Inputs["exim_queue"]().(*EximQueue)
	e.SpoolDirectory, e.now = spool, func() time.Time { return now }
	if set != nil {
		set(e)
	}
	require.NoError(t, e.Init())
	acc := &testutil.Accumulator{}
	require.NoError(t, e.Gather(acc))
	out := map[string]map[string]any{}
	for _, m := range acc.GetTelegrafMetrics() {
		require.Equal(t, "exim_queue", m.Name())
		out[m.Tags()["state"]] = m.Fields()
	}
	return out, acc.Errors
}

// TestSpool: the spool a real Exim wrote (testdata/SOURCES.md): one
// message queued, one frozen, their sizes (header and data files) and
// ages from the received time of their header files.
func TestSpool(t *testing.T) {
	received := time.Unix(1796357596, 0)
	got, errs := gather(t, "testdata/spool", received.Add(90*time.Second), nil)
	require.Empty(t, errs)
	require.Equal(t, map[string]map[string]any{
		"queued": {"length": int64(1), "size": int64(633 + 22), "age": int64(90), "truncated": false},
		"frozen": {"length": int64(1), "size": int64(649 + 22), "age": int64(90), "truncated": false},
	}, got)
	got, _ = gather(t, "testdata/spool", received, func(e *EximQueue) { e.MaxMessages = 1 })
	require.Equal(t, int64(1), got["queued"]["length"].(int64)+got["frozen"]["length"].(int64), "max_messages")
	require.Equal(t, true, got["queued"]["truncated"])
}

// TestBadSpool: a missing spool is an error naming the option; a header
// file that is not Exim's is an error of its own and the rest is counted;
// split_spool_directory's subfolders are read.
func TestBadSpool(t *testing.T) {
	e := inputs.Inputs["exim_queue"]().(*EximQueue)
	e.SpoolDirectory = filepath.Join(t.TempDir(), "none")
	require.NoError(t, e.Init())
	require.ErrorContains(t, e.Gather(&testutil.Accumulator{}), `"spool_directory"`)

	spool := t.TempDir()
	got, errs := gather(t, spool, time.Now(), nil)
	require.Empty(t, errs)
	require.Equal(t, int64(0), got["queued"]["length"], "no input/ yet: empty")
	split := filepath.Join(spool, "input", "Z")
	require.NoError(t, os.MkdirAll(split, 0o755))
	for _, f := range []string{"1xZKfc-0004xz-3B-H", "1xZKfc-0004xz-3B-D"} {
		b, err := os.ReadFile(filepath.Join("testdata/spool/input", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(split, f), b, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(spool, "input", "1xZKfd-0000aa-3B-H"), []byte("garbage\n"), 0o644))
	got, errs = gather(t, spool, time.Unix(1796357600, 0), nil)
	require.Len(t, errs, 1)
	require.ErrorContains(t, errs[0], "not an Exim header file")
	require.Equal(t, int64(1), got["queued"]["length"], "the split spool's message")
	require.Equal(t, int64(4), got["queued"]["age"])
}

// TestACLVariables: ACL variables come before "-frozen" in a header file,
// each an option line with the value's length and the value after it
// (Exim's spec, "Format of the -H file"), a value that may hold newlines
// and lines starting with "-" or not: they do not end the options early.
func TestACLVariables(t *testing.T) {
	spool := t.TempDir()
	input := filepath.Join(spool, "input")
	require.NoError(t, os.MkdirAll(input, 0o755))
	value := "first line\nnot an option\n-frozen lookalike"
	h := "1xZKfe-0000aa-3B-H\nDebian-exim 101 101\n<a@example.com>\n1796357596 0\n-received_protocol esmtp\n" +
		fmt.Sprintf("-aclm _spamscore %d\n%s\n", len(value), value) +
		"-aclc 0 3\nabc\n-frozen 1796357600\nXX\n1\nb@example.net\n"
	require.NoError(t, os.WriteFile(filepath.Join(input, "1xZKfe-0000aa-3B-H"), []byte(h), 0o644))
	got, errs := gather(t, spool, time.Unix(1796357606, 0), nil)
	require.Empty(t, errs)
	require.Equal(t, int64(1), got["frozen"]["length"], "frozen after the ACL variables")
	require.Equal(t, int64(10), got["frozen"]["age"])

	unfrozen := strings.Replace(h, "-frozen 1796357600\n", "", 1)
	require.NoError(t, os.WriteFile(filepath.Join(input, "1xZKfe-0000aa-3B-H"), []byte(unfrozen), 0o644))
	got, _ = gather(t, spool, time.Unix(1796357606, 0), nil)
	require.Equal(t, int64(1), got["queued"]["length"], "the value's \"-frozen lookalike\" is no option")
}
