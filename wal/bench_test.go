package wal

import (
	"fmt"
	"testing"
)

// BenchmarkAppendParallel measures small appends from many goroutines with
// real fsync: the cost of an acknowledged insert under group commit.
// fsyncs/op below 1 is group commit at work.
func BenchmarkAppendParallel(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines-per-cpu=%d", par), func(b *testing.B) {
			benchAppend(b, par, false)
		})
	}
}

// BenchmarkAppendNoSync is BenchmarkAppendParallel without fsync: the CPU
// cost of the log itself.
func BenchmarkAppendNoSync(b *testing.B) {
	benchAppend(b, 16, true)
}

func benchAppend(b *testing.B, par int, noSync bool) {
	l := openT(b, Config{Dir: b.TempDir(), NoSync: noSync})
	r := rec(1, 200)
	b.ReportAllocs()
	b.SetBytes(int64(len(r)))
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := l.Stats()
	b.ReportMetric(float64(st.Fsyncs)/float64(b.N), "fsyncs/op")
	closeT(b, l)
}
