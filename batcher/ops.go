package batcher

import (
	"context"
	"fmt"
)

// op is work that must run on a tenant's writer goroutine, between
// flushes: anything that changes the tenant's database outside an insert
// (a pin, a freeze, a discard). The writer owns the database's writes and
// its cached schemas, so these never race a flush.
type op struct {
	ctx  context.Context // the caller's: ends the op early when the caller gives up
	fn   func(ctx context.Context, w *writer) error
	done chan error // 1-buffered: the writer never blocks on a caller gone
}

// do runs fn on the tenant's writer goroutine and returns its error, or
// ctx's if ctx ends first (fn is then aborted through its context).
func (b *Batcher) do(ctx context.Context, tenant string, fn func(ctx context.Context, w *writer) error) error {
	w, err := b.writer(tenant)
	if err != nil {
		return err
	}
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	w.mu.Lock()
	w.ops = append(w.ops, o)
	w.mu.Unlock()
	w.signal()
	select {
	case err := <-o.done:
		return err
	case <-w.done:
		select {
		case err := <-o.done:
			return err
		default:
			return fmt.Errorf("tenant %s: %w", w.tenant, ErrClosed)
		}
	case <-ctx.Done():
		return fmt.Errorf("tenant %s: %w", w.tenant, ctx.Err())
	}
}

// runOps runs the ops waiting, on the writer goroutine, each under both the
// writer's context and its caller's.
func (w *writer) runOps() {
	w.mu.Lock()
	ops := w.ops
	w.ops = nil
	w.mu.Unlock()
	for _, o := range ops {
		if err := o.ctx.Err(); err != nil {
			o.done <- err
			continue
		}
		ctx, cancel := context.WithCancel(w.ctx)
		stop := context.AfterFunc(o.ctx, cancel)
		o.done <- o.fn(ctx, w) // its changes bumped the data version: see withConn
		stop()
		cancel()
	}
}
