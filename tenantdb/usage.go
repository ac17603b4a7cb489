package tenantdb

import (
	"errors"
	"io/fs"
	"os"
)

// freeNote is free space measured inside a tenant's database file: blocks
// DuckDB freed (rows deleted, then a CHECKPOINT) and will reuse before it
// grows the file, but keeps in the file unless they are at its end.
type freeNote struct {
	fileSize int64 // the file's size when measured
	free     int64 // bytes of free blocks then
}

// NoteFree records that the tenant's database file holds free bytes of
// free blocks, measured just now (DuckDB's pragma_database_size, after a
// CHECKPOINT). Used subtracts them until the file grows, which DuckDB does
// only once its free blocks are used.
func (p *Pool) NoteFree(tenantID string, free int64) {
	fi, err := os.Stat(p.Path(tenantID))
	if err != nil || free <= 0 {
		p.free.Delete(tenantID)
		return
	}
	p.free.Store(tenantID, freeNote{fileSize: fi.Size(), free: min(free, fi.Size())})
}

// Used is the bytes the tenant's data takes: Size less the free blocks
// inside the file last noted by NoteFree, so that rows deleted count as
// gone even where DuckDB cannot shorten the file. The storage quota
// measures this. Once the file is longer than when the free blocks were
// measured, they have all been reused and Used is Size.
func (p *Pool) Used(tenantID string) (int64, error) {
	size, err := p.Size(tenantID)
	if err != nil {
		return 0, err
	}
	v, ok := p.free.Load(tenantID)
	if !ok {
		return size, nil
	}
	note := v.(freeNote)
	fi, err := os.Stat(p.Path(tenantID))
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.Size() > note.fileSize {
		p.free.CompareAndDelete(tenantID, note)
		return size, nil
	}
	if err != nil {
		return 0, err
	}
	return size - note.free, nil
}
