package ingest

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/tenant"
	"duckgate/tenantdb"
)

// exportTimeout bounds making an export (the flush and the copy), not
// sending it.
const exportTimeout = 10 * time.Minute

// exportExtra are the reserved tables an export holds besides the
// tenant's own: the rows that did not fit are the tenant's data too.
var exportExtra = []string{batcher.QuarantineTable}

// Export serves GET /api/export: the tenant's whole database as one
// consistent snapshot, a DuckDB file (the default, ?format=duckdb) or a
// zip of one Parquet file per table and manifest.json
// (?format=parquet). Rows acknowledged before the request are flushed
// first; the copy is one DuckDB transaction, so every committed batch is in
// it whole and none in part. One export per tenant runs at a time
// (ErrExportBusy). The copy is made in the tenant's scratch directory and
// removed once sent. It writes the answer itself.
func (h *Handler) Export(ctx *fasthttp.RequestCtx, t tenant.Tenant) error {
	format := strings.ToLower(string(ctx.QueryArgs().Peek("format")))
	switch format {
	case "", "duckdb", "parquet":
	default:
		return fmt.Errorf("%w: format %.32q is not an export format; use duckdb (the default) or parquet", ErrBadRequest, format)
	}
	if h.cfg.Pool == nil {
		return fmt.Errorf("%w: exports are not enabled on this server", ErrBadRequest)
	}
	if _, busy := h.exports.LoadOrStore(t.ID, struct{}{}); busy {
		return fmt.Errorf("%w: wait for it to finish", ErrExportBusy)
	}
	done := func() { h.exports.Delete(t.ID) }
	sent := false
	defer func() {
		if !sent {
			done()
		}
	}()

	xctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	if err := h.cfg.Batcher.Flush(xctx, t.ID); err != nil {
		// The export is still a consistent snapshot, of what is committed.
		h.log.Warn("export: flush before the snapshot failed", zap.String("tenant", t.ID), zap.Error(err))
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	if format == "parquet" {
		dir, m, err := h.cfg.Pool.ExportParquet(xctx, t.ID, exportExtra)
		if err != nil {
			return err
		}
		manifest, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
		ctx.SetContentType("application/zip")
		ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+t.ID+`-`+stamp+`.zip"`)
		sent = true
		log := h.log
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer done()
			defer os.RemoveAll(dir)
			if err := writeExportZip(w, dir, manifest, m.Tables); err != nil {
				log.Info("export: zip not sent whole", zap.String("tenant", t.ID), zap.Error(err))
			}
		})
		return nil
	}
	path, _, err := h.cfg.Pool.ExportDatabase(xctx, t.ID, "export-"+stamp+".duckdb", exportExtra)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("open export: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("open export: %w", err)
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+t.ID+`-`+stamp+`.duckdb"`)
	sent = true
	// fasthttp closes the body stream once the response is sent or the
	// connection fails: the file goes then.
	ctx.SetBodyStream(&removeOnClose{File: f, done: done}, int(st.Size()))
	return nil
}

// writeExportZip writes manifest.json and each table's Parquet file of dir
// into a zip on w. Parquet is compressed already: the files are stored.
func writeExportZip(w *bufio.Writer, dir string, manifest []byte, tables []tenantdb.ExportTable) error {
	zw := zip.NewWriter(w)
	mod := time.Now()
	add := func(name string, method uint16, r io.Reader) error {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: mod})
		if err != nil {
			return err
		}
		_, err = io.Copy(fw, r)
		return err
	}
	if err := add("manifest.json", zip.Deflate, bytes.NewReader(manifest)); err != nil {
		return err
	}
	for _, t := range tables {
		f, err := os.Open(filepath.Join(dir, t.File))
		if err != nil {
			return err
		}
		err = add(t.File, zip.Store, f)
		f.Close()
		if err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return w.Flush()
}

// removeOnClose is an export file that is deleted when fasthttp closes it.
type removeOnClose struct {
	*os.File
	done func()
}

// Close closes and removes the file and ends the tenant's export.
func (r *removeOnClose) Close() error {
	err := r.File.Close()
	_ = os.Remove(r.Name())
	r.done()
	return err
}
