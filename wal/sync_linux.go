//go:build linux

package wal

import (
	"os"
	"syscall"
)

// syncData makes f's data durable: fdatasync(2) for an *os.File, Sync for
// any other File. fdatasync flushes what reading the data back needs (the
// data, and the size when it changed) but not timestamps: with preallocated
// segments (see preallocSize) a group's fsync would otherwise commit the
// file system's journal whenever the coarse clock moved the file's mtime.
func syncData(f File) error {
	of, ok := f.(*os.File)
	if !ok {
		return f.Sync()
	}
	rc, err := of.SyscallConn()
	if err != nil {
		return f.Sync()
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: of.Name(), Err: serr}
	}
	return nil
}
