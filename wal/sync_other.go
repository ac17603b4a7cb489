//go:build !linux

package wal

// syncData makes f's data durable: Sync (fsync) outside Linux.
func syncData(f File) error { return f.Sync() }
