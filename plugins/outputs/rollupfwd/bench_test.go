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
// policies. Nothing listens at the destination, so the spool only grows.
func BenchmarkWrite(b *testing.B) {
	batch := make([]telegraf.Metric, 1000)
	for i := range batch {
		batch[i] = metric.New("mail_latency",
			map[string]string{"dc": "dc1", "direction": "outbound", "customer": fmt.Sprintf("c%05d", i%50)},
			map[string]any{"count": int64(i), "p50": 240.5, "p90": 800.1, "p95": 1000.2, "p99": 1900.7, "max": 9000.1, "mean": 320.4},
			time.Unix(1795356000, int64(i)))
	}
	for _, fsync := range []string{"batch", "interval"} {
		b.Run("fsync_"+fsync, func(b *testing.B) {
			r := newRollupFwd()
			r.URLs, r.Database, r.SpoolDir, r.Log = []string{"http://127.0.0.1:1"}, "central", b.TempDir(), testutil.Logger{}
			r.AllowTags = []string{"dc", "direction", "customer"}
			r.AllowFields = []string{"count", "p50", "p90", "p95", "p99", "max", "mean"}
			r.Fsync, r.MaxSpoolBytes = fsync, config.Size(64<<30)
			r.RetryMin, r.RetryMax = config.Duration(time.Hour), config.Duration(time.Hour)
			require.NoError(b, r.Init())
			require.NoError(b, r.Connect())
			defer r.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
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
			b.ReportMetric(float64(b.N*len(batch)), "points-spooled")
		})
	}
}
