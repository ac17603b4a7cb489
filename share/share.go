package share

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/goccy/go-json"
	"go.uber.org/zap"

	"duckgate/atomicfile"
	"duckgate/query"
)

// Config configures a Service. Zero fields take their defaults.
type Config struct {
	// Path is the registry file of links, e.g. <data>/shares.json. Required
	// unless Shared is set; then it is not used.
	Path string
	// Metrics is the set the service registers its series on; nil skips them.
	Metrics *metrics.Set
	// BaseURL, if set, makes link URLs absolute: BaseURL + "/share/<id>",
	// e.g. "https://duckgate.example.com". Empty gives "/share/<id>".
	BaseURL string
	// MaxDuration is the longest lifetime a link may ask for; longer is
	// refused (400). Default 30 days.
	MaxDuration time.Duration
	// DefaultDuration is the lifetime of a link whose request gives no
	// duration. Default 7 days (at most MaxDuration).
	DefaultDuration time.Duration
	// KeepExpired is how long an expired link's record is kept, so that its
	// URL answers 410 rather than 404. Its snapshot is deleted at expiry.
	// Default 7 days.
	KeepExpired time.Duration
	// MaxLinksPerTenant bounds a tenant's links, revoked and expired ones
	// included until they are dropped. Default 1000.
	MaxLinksPerTenant int
	// PreviewRows is the number of rows the page shows. Default 20.
	PreviewRows int
	// JanitorInterval is how often expired links are cleaned up and
	// download counts saved. Default 1 minute.
	JanitorInterval time.Duration
	// TenantActive reports whether a tenant may serve its links; false
	// answers 403. Nil means every tenant is active.
	TenantActive func(tenantID string) bool
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Shared, if set, keeps the links in a store the nodes of a cluster
	// share (cluster/kv) instead of Path's file: a link made on one node
	// resolves on all. See Shared.
	Shared Shared
}

// Defaults of Config. DefaultMaxDuration is exported for the default of
// the flag that sets MaxDuration.
const (
	DefaultMaxDuration       = 30 * 24 * time.Hour
	defaultDefaultDuration   = 7 * 24 * time.Hour
	defaultKeepExpired       = 7 * 24 * time.Hour
	defaultMaxLinksPerTenant = 1000
	defaultPreviewRows       = 20
	defaultJanitorInterval   = time.Minute
)

// idBytes is the entropy of a link id: 192 bits, well past the 128 needed
// to make guessing hopeless; base64url makes it 32 characters.
const idBytes = 24

// idLen is the length of an encoded id.
var idLen = base64.RawURLEncoding.EncodedLen(idBytes)

// maxNameLen is the longest link name, in bytes.
const maxNameLen = 200

// Service keeps share links and serves them.
type Service struct {
	cfg    Config
	engine *query.Engine
	log    *zap.Logger

	// reg writes the registry file in the order of the changes, with mu
	// released.
	reg atomicfile.Registry

	mu     sync.Mutex
	byHash map[[32]byte]*link // guarded by mu
	dirty  bool               // download counts changed since the last save; guarded by mu
	closed bool               // guarded by mu

	downloadsTotal atomic.Int64 // downloads since start, for /metrics

	stop chan struct{}
	done chan struct{}
}

// link is one share link in memory.
type link struct {
	hash      [32]byte
	linkID    string // hex of the hash's first 8 bytes: not secret
	tenant    string
	name      string
	sql       string
	params    json.RawMessage // the JSON array of params, or nil
	created   time.Time
	expires   time.Time
	rows      int64 // snapshot links: the number of rows
	downloads atomic.Int64
	// unsaved are the downloads counted here and not yet added to the
	// shared record (Config.Shared only).
	unsaved atomic.Int64

	// snapshot is the file name of the snapshot in the tenant's scratch
	// directory; snapshot links keep isSnapshot after the file is deleted.
	snapshot   string // guarded by Service.mu
	isSnapshot bool
	revoked    time.Time // zero unless revoked; guarded by Service.mu
	// refused is why the sandbox refused the link's SQL when the service
	// was opened (see recheck); "" if it passed. Guarded by Service.mu.
	refused string
}

// record is a link in the registry file.
type record struct {
	Hash      string          `json:"hash"` // hex SHA-256 of the id
	Tenant    string          `json:"tenant"`
	Name      string          `json:"name,omitempty"`
	SQL       string          `json:"sql"`
	Params    json.RawMessage `json:"params,omitempty"`
	Created   time.Time       `json:"created"`
	Expires   time.Time       `json:"expires"`
	Snapshot  bool            `json:"snapshot,omitempty"`
	File      string          `json:"file,omitempty"` // the snapshot file in the scratch directory, until deleted
	Rows      int64           `json:"rows,omitempty"`
	Downloads int64           `json:"downloads"`
	Revoked   *time.Time      `json:"revoked,omitempty"`
	// Refused is why the query sandbox refused the SQL at the last start;
	// such a link is not served (ErrRefused).
	Refused string `json:"refused,omitempty"`
}

type registryFile struct {
	Version int      `json:"version"`
	Links   []record `json:"links"`
}

// Open loads the registry at cfg.Path (none yet is an empty registry),
// cleans up expired links and starts the janitor. engine runs the queries.
func Open(cfg Config, engine *query.Engine, log *zap.Logger) (*Service, error) {
	if cfg.Path == "" && cfg.Shared == nil {
		return nil, errors.New("share: Config.Path is required")
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.DefaultDuration <= 0 {
		cfg.DefaultDuration = defaultDefaultDuration
	}
	cfg.DefaultDuration = min(cfg.DefaultDuration, cfg.MaxDuration)
	if cfg.KeepExpired <= 0 {
		cfg.KeepExpired = defaultKeepExpired
	}
	if cfg.MaxLinksPerTenant <= 0 {
		cfg.MaxLinksPerTenant = defaultMaxLinksPerTenant
	}
	if cfg.PreviewRows <= 0 {
		cfg.PreviewRows = defaultPreviewRows
	}
	if cfg.JanitorInterval <= 0 {
		cfg.JanitorInterval = defaultJanitorInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if log == nil {
		log = zap.NewNop()
	}
	s := &Service{cfg: cfg, engine: engine, log: log, byHash: make(map[[32]byte]*link),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.reg.Path = cfg.Path
	load := s.load
	if cfg.Shared != nil {
		load = s.loadShared
	}
	if err := load(); err != nil {
		return nil, err
	}
	if err := s.sweep(); err != nil {
		return nil, err
	}
	s.removeOrphans()
	if err := s.recheck(); err != nil {
		return nil, err
	}
	go s.janitor()
	if cfg.Metrics != nil {
		cfg.Metrics.RegisterMetricsWriter(func(w io.Writer) {
			metrics.WriteCounterUint64(w, "duckgate_share_downloads_total", uint64(s.downloadsTotal.Load()))
		})
	}
	return s, nil
}

func (s *Service) load() error {
	b, err := os.ReadFile(s.cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("share: read registry: %w", err)
	}
	var f registryFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("share: parse registry %s: %w", s.cfg.Path, err)
	}
	for _, r := range f.Links {
		l, err := linkOf(r)
		if err != nil {
			return fmt.Errorf("share: registry %s: %w", s.cfg.Path, err)
		}
		s.byHash[l.hash] = l
	}
	return nil
}

// linkOf is the link of a stored record.
func linkOf(r record) (*link, error) {
	h, err := hex.DecodeString(r.Hash)
	if err != nil || len(h) != sha256.Size {
		return nil, fmt.Errorf("bad hash %q", r.Hash)
	}
	l := &link{tenant: r.Tenant, name: r.Name, sql: r.SQL, params: r.Params, created: r.Created,
		expires: r.Expires, rows: r.Rows, snapshot: r.File, isSnapshot: r.Snapshot, refused: r.Refused}
	copy(l.hash[:], h)
	l.linkID = hex.EncodeToString(l.hash[:8])
	l.downloads.Store(r.Downloads)
	if r.Revoked != nil {
		l.revoked = *r.Revoked
	}
	return l, nil
}

// recordOf is the stored record of l. The caller holds mu, or l is not in
// byHash yet.
func recordOf(l *link) record {
	r := record{Hash: hex.EncodeToString(l.hash[:]), Tenant: l.tenant, Name: l.name, SQL: l.sql,
		Params: l.params, Created: l.created, Expires: l.expires, Snapshot: l.isSnapshot,
		File: l.snapshot, Rows: l.rows, Downloads: l.downloads.Load(), Refused: l.refused}
	if !l.revoked.IsZero() {
		t := l.revoked
		r.Revoked = &t
	}
	return r
}

// save writes the registry file, encoded under mu and written with mu
// released (atomicfile.Registry); a failed write leaves the registry dirty,
// for the next save.
func (s *Service) save() error {
	var refused error // an encoding error: nothing was written
	err := s.reg.Change(&s.mu, func() ([]byte, func(), error) {
		f := registryFile{Version: 1, Links: make([]record, 0, len(s.byHash))}
		for _, l := range s.byHash {
			f.Links = append(f.Links, recordOf(l))
		}
		sort.Slice(f.Links, func(i, j int) bool { return f.Links[i].Created.Before(f.Links[j].Created) })
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			refused = fmt.Errorf("share: encode registry: %w", err)
			return nil, nil, refused
		}
		s.dirty = false
		return b, func() { s.dirty = true }, nil
	})
	if err != nil && refused == nil {
		return fmt.Errorf("share: save registry: %w", err)
	}
	return err
}

// recheckTimeout bounds the check of one stored link at start.
const recheckTimeout = 10 * time.Second

// recheck runs the query sandbox's check again on the SQL of every live
// link (query.Engine.CheckStored: the allow-list on DuckDB's parse tree, no
// tenant data needed) and marks the links it refuses, or clears the mark of
// those it allows now, and saves the registry if a mark changed. A refused
// link answers ErrRefused and is listed with status "refused". A check that
// fails for another reason (a timeout) leaves the link as it was. It runs in
// Open, before any link is served.
func (s *Service) recheck() error {
	now := s.cfg.Now()
	s.mu.Lock()
	var live []*link
	for _, l := range s.byHash {
		if l.revoked.IsZero() && now.Before(l.expires) {
			live = append(live, l)
		}
	}
	s.mu.Unlock()
	changed := false
	for _, l := range live {
		err := s.engine.CheckStored(context.Background(), l.tenant, query.Request{SQL: l.sql, Timeout: recheckTimeout})
		var reason string
		switch {
		case err == nil:
		case errors.Is(err, query.ErrNotAllowed), errors.Is(err, query.ErrNotReadOnly), errors.Is(err, query.ErrMultipleStatements),
			errors.Is(err, query.ErrBadRequest), errors.Is(err, query.ErrSQLTooLarge), errors.Is(err, query.ErrBadQuery):
			reason = err.Error()
		default:
			s.log.Warn("share link not checked at start", zap.String("tenant", l.tenant), zap.String("link_id", l.linkID), zap.Error(err))
			continue
		}
		s.mu.Lock()
		differs := l.refused != reason
		if differs && s.cfg.Shared == nil {
			l.refused = reason
			changed = true
		}
		s.mu.Unlock()
		if differs && s.cfg.Shared != nil {
			if err := s.modifyShared(l, func(r *record) bool { r.Refused = reason; return true }); err != nil {
				return err
			}
		}
		if reason != "" {
			s.log.Warn("share link refused by the query sandbox: not served", zap.String("tenant", l.tenant),
				zap.String("link_id", l.linkID), zap.String("reason", reason))
		}
	}
	if !changed {
		return nil
	}
	return s.save()
}

// createRequest is a link to make.
type createRequest struct {
	// SQL is one SELECT, checked by the query sandbox.
	SQL string
	// Params are bound to the SQL's placeholders, as in package query
	// (numbers as json.Number).
	Params []any
	// Name is shown on the page and names the downloads. Optional.
	Name string
	// Duration is the link's lifetime; 0 means Config.DefaultDuration.
	Duration time.Duration
	// Snapshot freezes the result now instead of running the query at each
	// download.
	Snapshot bool
}

// createdLink is a new link. ID and URL are shown only once.
type createdLink struct {
	ID        string    `json:"id"`
	LinkID    string    `json:"link_id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Snapshot  bool      `json:"snapshot"`
	Rows      *int64    `json:"rows,omitempty"` // snapshot links only
}

// create checks req and makes a link of the tenant's.
func (s *Service) create(ctx context.Context, tenantID string, req createRequest) (createdLink, error) {
	if err := validName(req.Name); err != nil {
		return createdLink{}, err
	}
	switch {
	case req.Duration == 0:
		req.Duration = s.cfg.DefaultDuration
	case req.Duration < time.Second:
		return createdLink{}, fmt.Errorf("%w: duration must be a positive number of seconds", ErrBadRequest)
	case req.Duration > s.cfg.MaxDuration:
		return createdLink{}, fmt.Errorf("%w: duration %ds is longer than the longest this server allows, %ds (%s)",
			ErrBadRequest, int64(req.Duration/time.Second), int64(s.cfg.MaxDuration/time.Second), humanDuration(s.cfg.MaxDuration))
	}
	var params json.RawMessage
	if len(req.Params) > 0 {
		b, err := json.Marshal(req.Params)
		if err != nil {
			return createdLink{}, fmt.Errorf("%w: params: %v", ErrBadRequest, err)
		}
		params = b
	}
	if n := s.countOf(tenantID); n >= s.cfg.MaxLinksPerTenant {
		return createdLink{}, fmt.Errorf("%w (%d of %d)", ErrTooMany, n, s.cfg.MaxLinksPerTenant)
	}
	qreq := query.Request{SQL: req.SQL, Params: req.Params}
	if err := s.engine.Check(ctx, tenantID, qreq); err != nil {
		return createdLink{}, err
	}

	id, hash, err := newID()
	if err != nil {
		return createdLink{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	l := &link{hash: hash, tenant: tenantID, name: req.Name, sql: req.SQL, params: params,
		created: now, expires: now.Add(req.Duration), isSnapshot: req.Snapshot}
	l.linkID = hex.EncodeToString(l.hash[:8])

	if req.Snapshot {
		var fn [12]byte
		_, _ = rand.Read(fn[:])
		name := "share-" + hex.EncodeToString(fn[:]) + ".parquet"
		qreq.Flush = true
		_, rows, err := s.engine.ExportParquet(ctx, tenantID, qreq, name)
		if err != nil {
			return createdLink{}, err
		}
		l.snapshot, l.rows = name, rows
	} else {
		// Bind once, so that a wrong parameter fails now rather than at the
		// first download. LIMIT 0 reads no data.
		rows, err := s.engine.Rows(ctx, tenantID, query.Request{SQL: wrapLimit(req.SQL, 0), Params: req.Params})
		if err != nil {
			return createdLink{}, err
		}
		_ = rows.Close()
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.removeSnapshot(l.tenant, l.snapshot)
		return createdLink{}, errors.New("share: the service is closed")
	}
	if s.cfg.Shared != nil {
		s.mu.Unlock()
		if err := s.createShared(l); err != nil {
			s.removeSnapshot(l.tenant, l.snapshot)
			return createdLink{}, err
		}
	} else {
		s.byHash[l.hash] = l
		s.mu.Unlock()
		if err := s.save(); err != nil {
			s.mu.Lock()
			delete(s.byHash, l.hash)
			s.mu.Unlock()
			s.removeSnapshot(l.tenant, l.snapshot)
			return createdLink{}, err
		}
	}
	s.log.Info("share link created", zap.String("tenant", tenantID), zap.String("link_id", l.linkID),
		zap.Bool("snapshot", l.isSnapshot), zap.Time("expires", l.expires))
	c := createdLink{ID: id, LinkID: l.linkID, URL: s.urlOf(id), ExpiresAt: l.expires, Snapshot: l.isSnapshot}
	if l.isSnapshot {
		rows := l.rows
		c.Rows = &rows
	}
	return c, nil
}

// newID makes a link id and its hash, the registry's key.
func newID() (string, [32]byte, error) {
	var rnd [idBytes]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", [32]byte{}, fmt.Errorf("share: random id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(rnd[:])
	return id, sha256.Sum256([]byte(id)), nil
}

// urlOf is the public URL of the link id.
func (s *Service) urlOf(id string) string {
	return s.cfg.BaseURL + "/share/" + id
}

func (s *Service) countOf(tenantID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.byHash {
		if l.tenant == tenantID {
			n++
		}
	}
	return n
}

func validName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: name must be at most %d bytes", ErrBadRequest, maxNameLen)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: name must not contain control characters", ErrBadRequest)
		}
	}
	return nil
}

// humanDuration writes whole days as days.
func humanDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// linkInfo is what the owner sees of a link: no id, no URL.
type linkInfo struct {
	LinkID    string    `json:"link_id"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires_at"`
	Snapshot  bool      `json:"snapshot"`
	Downloads int64     `json:"downloads"`
	Revoked   bool      `json:"revoked"`
	Expired   bool      `json:"expired"`
	// Status is "active", "revoked", "expired" or "refused" (the query
	// sandbox refused the link's SQL at the last start: not served).
	Status string `json:"status"`
	// Refused says why the sandbox refused the SQL; only with "refused".
	Refused string `json:"refused,omitempty"`
}

// infoOf is what the owner sees of l. The caller holds Service.mu.
func infoOf(l *link, now time.Time) linkInfo {
	i := linkInfo{LinkID: l.linkID, Name: l.name, Created: l.created, ExpiresAt: l.expires,
		Snapshot: l.isSnapshot, Downloads: l.downloads.Load(), Revoked: !l.revoked.IsZero(),
		Expired: !now.Before(l.expires)}
	switch {
	case i.Revoked:
		i.Status = "revoked"
	case i.Expired:
		i.Status = "expired"
	case l.refused != "":
		i.Status, i.Refused = "refused", l.refused
	default:
		i.Status = "active"
	}
	return i
}

// list returns the tenant's links, newest first.
func (s *Service) list(tenantID string) []linkInfo {
	now := s.cfg.Now()
	s.mu.Lock()
	out := []linkInfo{}
	for _, l := range s.byHash {
		if l.tenant == tenantID {
			out = append(out, infoOf(l, now))
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].LinkID < out[j].LinkID
	})
	return out
}

// revoke revokes the tenant's link ref, a link id or the link's full id,
// and deletes its snapshot. Revoking twice is not an error. Another tenant's
// link is ErrNotFound.
func (s *Service) revoke(tenantID, ref string) (linkInfo, error) {
	if s.cfg.Shared != nil {
		return s.revokeShared(tenantID, ref)
	}
	s.mu.Lock()
	l := s.findLocked(tenantID, ref)
	if l == nil {
		s.mu.Unlock()
		return linkInfo{}, ErrNotFound
	}
	if l.revoked.IsZero() {
		l.revoked = s.cfg.Now().UTC().Truncate(time.Second)
	}
	file := l.snapshot
	l.snapshot = ""
	info := infoOf(l, s.cfg.Now())
	s.mu.Unlock()
	s.removeSnapshot(tenantID, file)
	if err := s.save(); err != nil {
		return linkInfo{}, err
	}
	s.log.Info("share link revoked", zap.String("tenant", tenantID), zap.String("link_id", l.linkID))
	return info, nil
}

// findLocked finds the tenant's link by link id or id.
func (s *Service) findLocked(tenantID, ref string) *link {
	if len(ref) == 16 {
		for _, l := range s.byHash {
			if l.tenant == tenantID && l.linkID == ref {
				return l
			}
		}
		return nil
	}
	if len(ref) != idLen {
		return nil
	}
	l := s.byHash[sha256.Sum256([]byte(ref))]
	if l == nil || l.tenant != tenantID {
		return nil
	}
	return l
}

// DropTenant forgets every link of a deleted tenant. Its snapshot files go
// with its scratch directory.
func (s *Service) DropTenant(tenantID string) error {
	if s.cfg.Shared != nil {
		return s.dropTenantShared(tenantID)
	}
	s.mu.Lock()
	n := 0
	for h, l := range s.byHash {
		if l.tenant == tenantID {
			delete(s.byHash, h)
			n++
		}
	}
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	return s.save()
}

// resolve finds the live link of a public id.
func (s *Service) resolve(id string) (*link, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	s.mu.Lock()
	l := s.byHash[sha256.Sum256([]byte(id))]
	var revoked, refused bool
	if l != nil {
		revoked, refused = !l.revoked.IsZero(), l.refused != ""
	}
	s.mu.Unlock()
	switch {
	case l == nil:
		return nil, ErrNotFound
	case revoked || !s.cfg.Now().Before(l.expires):
		return nil, ErrGone
	case refused:
		return nil, ErrRefused
	case s.cfg.TenantActive != nil && !s.cfg.TenantActive(l.tenant):
		return nil, ErrSuspended
	}
	return l, nil
}

// snapshotPath is the path of a snapshot link's file; "" once deleted.
func (s *Service) snapshotPath(l *link) string {
	s.mu.Lock()
	file := l.snapshot
	s.mu.Unlock()
	if file == "" {
		return ""
	}
	return filepath.Join(s.engine.ScratchDir(l.tenant), file)
}

// validID reports whether id looks like an id: idLen base64url characters.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Service) removeSnapshot(tenantID, file string) {
	if file == "" {
		return
	}
	err := os.Remove(filepath.Join(s.engine.ScratchDir(tenantID), file))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("delete share snapshot", zap.String("tenant", tenantID), zap.Error(err))
	}
}

// removeOrphans deletes snapshot files no link refers to: left by a crash
// between writing a snapshot and saving its link. It runs in Open, before
// any link can be made.
func (s *Service) removeOrphans() {
	files, err := filepath.Glob(filepath.Join(s.engine.ScratchDir("*"), "share-*.parquet"))
	if err != nil || len(files) == 0 {
		return
	}
	known := make(map[string]bool)
	s.mu.Lock()
	for _, l := range s.byHash {
		if l.snapshot != "" {
			known[filepath.Join(s.engine.ScratchDir(l.tenant), l.snapshot)] = true
		}
	}
	s.mu.Unlock()
	for _, f := range files {
		if known[f] {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("delete orphaned share snapshot", zap.String("file", f), zap.Error(err))
		}
	}
}

// noteDownload counts a download; the count is saved lazily.
func (s *Service) noteDownload(l *link) {
	l.downloads.Add(1)
	if s.cfg.Shared != nil {
		l.unsaved.Add(1)
	}
	s.downloadsTotal.Add(1)
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

// sweep deletes the snapshots of expired and revoked links, drops links
// expired more than KeepExpired ago, and saves if anything changed,
// download counts included.
func (s *Service) sweep() error {
	if s.cfg.Shared != nil {
		return s.sweepShared()
	}
	now := s.cfg.Now()
	type gone struct{ tenant, file string }
	var files []gone
	s.mu.Lock()
	changed := s.dirty
	for h, l := range s.byHash {
		expired := !now.Before(l.expires)
		if l.snapshot != "" && (expired || !l.revoked.IsZero()) {
			files = append(files, gone{l.tenant, l.snapshot})
			l.snapshot = ""
			changed = true
		}
		if expired && now.Sub(l.expires) >= s.cfg.KeepExpired {
			delete(s.byHash, h)
			changed = true
		}
	}
	s.mu.Unlock()
	for _, f := range files {
		s.removeSnapshot(f.tenant, f.file)
	}
	if !changed {
		return nil
	}
	return s.save()
}

func (s *Service) janitor() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.sweep(); err != nil {
				s.log.Warn("share janitor", zap.Error(err))
			}
		}
	}
}

// Close stops the janitor and saves the download counts. Requests still
// being served may finish; new links are refused.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	return s.sweep()
}

// wrapLimit wraps a checked SELECT as a subquery with a LIMIT. The newline
// ends a trailing -- comment; the engine checks the result is one SELECT.
func wrapLimit(sql string, n int) string {
	return fmt.Sprintf("SELECT * FROM (%s\n) LIMIT %d", trimStatement(sql), n)
}

// wrapCount counts the rows of a checked SELECT.
func wrapCount(sql string) string {
	return "SELECT count(*) AS n FROM (" + trimStatement(sql) + "\n)"
}

func trimStatement(q string) string {
	return strings.TrimRight(q, " \t\r\n;")
}

// decodeParams is the inverse of the JSON encoding of params in Create:
// numbers come back as json.Number, as package query wants them.
func decodeParams(b json.RawMessage) ([]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var out []any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		return nil, fmt.Errorf("share: stored params: %w", err)
	}
	return out, nil
}
