package rollupfwd

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// BenchmarkWrite measures Write: the guard, line protocol and the spool
// append, with batches of 1000 rollups (metric_batch_size), for both fsync
// policies, every point new (each batch a minute later); then with
// skip_unchanged, the same batch written again and again, as Kapacitor
// does over its period (nothing spooled after the first). Nothing listens
// at the destination, so the spool only grows.
func BenchmarkWrite(b *testing.B) {
	batch := make([]telegraf.Metric, 1000)
	for i := range batch {
		batch[i] = metric.New("mail_latency",
			map[string]string{"dc": "dc1", "direction": "outbound", "customer": fmt.Sprintf("c%05d", i%50)},
			map[string]any{"count": int64(i), "p50": 240.5, "p90": 800.1, "p95": 1000.2, "p99": 1900.7, "max": 9000.1, "mean": 320.4},
			time.Unix(1795356000, int64(i)))
	}
	for _, c := range []struct {
		name, fsync string
		skip        time.Duration
		again       bool
	}{
		{"fsync_batch", "batch", 0, false},
		{"fsync_interval", "interval", 0, false},
		{"fsync_batch/skip_unchanged_new", "batch", 6 * time.Hour, false},
		{"fsync_batch/skip_unchanged_again", "batch", 6 * time.Hour, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := newRollupFwd()
			r.URLs, r.Database, r.SpoolDir, r.Log = []string{"http://127.0.0.1:1"}, "central", b.TempDir(), testutil.Logger{}
			r.AllowTags = []string{"dc", "direction", "customer"}
			r.AllowFields = []string{"count", "p50", "p90", "p95", "p99", "max", "mean"}
			r.Fsync, r.MaxSpoolBytes, r.SkipUnchanged = c.fsync, config.Size(64<<30), config.Duration(c.skip)
			r.RetryMin, r.RetryMax = config.Duration(time.Hour), config.Duration(time.Hour)
			require.NoError(b, r.Init())
			require.NoError(b, r.Connect())
			defer r.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !c.again {
					for _, m := range batch {
						m.SetTime(m.Time().Add(time.Minute))
					}
				}
				if err := r.Write(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "points/s")
			// The spool is on disk: the heap must not grow with it.
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
			size, _ := r.spool.Stats()
			b.ReportMetric(float64(size)/float64(b.N*len(batch)), "spooled-B/point")
			if r.unchanged != nil && !c.again {
				// What remembering costs: the heap over the digests held.
				b.ReportMetric(float64(ms.HeapInuse)/float64(r.unchanged.size()), "heap-B/remembered")
			}
		})
	}
}
