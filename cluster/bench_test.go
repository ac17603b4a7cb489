package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/cluster/clustertest"
)

// BenchmarkAppend publishes one encoded insert of 10 small rows and waits
// for its PubAck, one at a time (the latency an insert adds in cluster
// mode) and from 16 goroutines (throughput), on one NATS server (R1) and
// on three (R3).
//
//	go test -run '^$' -bench Append -benchtime 3000x ./cluster/
func BenchmarkAppend(b *testing.B) {
	for _, servers := range []int{1, 3} {
		b.Run(fmt.Sprintf("servers=%d", servers), func(b *testing.B) {
			nats := clustertest.Start(b, servers)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn, err := Connect(ctx, Config{URLs: nats.URLs(), Node: "bench", MaxBytes: 1 << 30}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			node := New(conn, nil, zap.NewNop())
			bl := batcher.NewBuilder()
			for i := range 10 {
				bl.AddString([]byte("user"), []byte("alice"))
				bl.AddNumber([]byte("n"), []byte(fmt.Sprint(i)))
				bl.AddString([]byte("event"), []byte("click"))
				bl.EndRow()
			}
			log := &recordingLog{}
			bt, err := batcher.New(batcher.Config{Log: log}, nil, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bt.Submit(batcher.Request{Tenant: "t", Table: "events", Rows: bl.Rows()}); err != nil {
				b.Fatal(err)
			}
			rec := log.rec
			b.Run("sequential", func(b *testing.B) {
				b.SetBytes(int64(len(rec)))
				for i := range b.N {
					if _, err := node.Append(ctx, fmt.Sprintf("t%d", i%64), "", rec); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel16", func(b *testing.B) {
				b.SetBytes(int64(len(rec)))
				b.SetParallelism(8) // 16 goroutines on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						i++
						if _, err := node.Append(ctx, fmt.Sprintf("t%d", i%64), "", rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// recordingLog keeps the last record appended: the encoding of an insert.
type recordingLog struct{ rec []byte }

func (l *recordingLog) Append(_ context.Context, _, _ string, rec []byte) (uint64, error) {
	l.rec = append([]byte(nil), rec...)
	return 1, nil
}
func (l *recordingLog) Committed(context.Context, string, uint64) error { return nil }
func (l *recordingLog) CaughtUp(context.Context, string) error          { return nil }
