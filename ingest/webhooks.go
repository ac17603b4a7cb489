package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/schema"
	"duckgate/tenant"
	"duckgate/webhook"
)

// Webhook endpoints.
//
//	POST   /api/webhooks       full key; {"provider","table","secret"} → 201 the endpoint
//	GET    /api/webhooks       full key; the tenant's endpoints, never a secret
//	DELETE /api/webhooks/{id}  full key; only the owner's, another's id is 404
//	POST   /api/webhooks/{id}  no key: the provider's delivery, authenticated by its signature
//
// Managing endpoints needs a "full" key: an endpoint both writes into a table
// (ingest) and holds a secret the tenant's admin owns; an ingest key shipped
// in an app must not be able to add one.
//
// A delivery is verified over the raw body, decoded like an insert of one
// object, and stored as one row with three more columns: _webhook_id (the
// provider's delivery id, NULL if it sent none), _webhook_event (the event
// name, NULL if none) and _received_at (TIMESTAMPTZ). A payload that is not
// an object (an array or a scalar) goes whole into a JSON column "payload".
// The handler answers once the row is queued, never waiting for DuckDB: the
// providers time out after 10 to 30 s. A redelivery of a stored id within the
// dedup window is answered 200 {"duplicate":true} and not stored again.

const (
	// maxRegistrationBody bounds a registration body: three short strings
	// (a secret is at most 1 KiB).
	maxRegistrationBody = 64 << 10
	// claimTimeout bounds how long a delivery waits for a concurrent
	// delivery of the same id to settle. That one only decodes and queues,
	// so it takes microseconds; GitHub gives up after 10 s.
	claimTimeout = 5 * time.Second
	// receivedAtLayout is RFC 3339 in UTC with microseconds, DuckDB's
	// TIMESTAMPTZ precision.
	receivedAtLayout = "2006-01-02T15:04:05.000000Z07:00"
)

// The metadata columns a webhook row carries besides the payload's fields.
// They are added first, so a payload key of the same name goes to the
// overflow column.
var (
	colWebhookID    = []byte("_webhook_id")
	colWebhookEvent = []byte("_webhook_event")
	colReceivedAt   = []byte("_received_at")
	colPayload      = []byte("payload")
)

// WebhookEndpoint is an endpoint as the API shows it: never its secret.
type WebhookEndpoint struct {
	ID       string    `json:"id"`
	URL      string    `json:"url"`
	Provider string    `json:"provider"`
	Table    string    `json:"table"`
	Created  time.Time `json:"created"`
}

// WebhookResponse is the answer to an accepted delivery.
type WebhookResponse struct {
	// Duplicate is true when the delivery id was stored before: nothing
	// was stored this time.
	Duplicate bool `json:"duplicate"`
}

func endpointView(e webhook.Endpoint) WebhookEndpoint {
	return WebhookEndpoint{ID: e.ID, URL: "/api/webhooks/" + e.ID, Provider: string(e.Provider), Table: e.Table, Created: e.Created}
}

// routeWebhooks serves /api/webhooks and /api/webhooks/{id}.
func (s *Server) routeWebhooks(ctx *fasthttp.RequestCtx, method, path string) {
	if s.cfg.Webhooks == nil {
		writeError(ctx, fmt.Errorf("%w: webhooks are not enabled", ErrNotFound))
		return
	}
	if path == "/api/webhooks" {
		switch method {
		case fasthttp.MethodPost:
			s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) { s.handleCreateWebhook(ctx, t) })
		case fasthttp.MethodGet:
			s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) {
				list := s.cfg.Webhooks.List(t.ID)
				out := make([]WebhookEndpoint, len(list))
				for i, e := range list {
					out[i] = endpointView(e)
				}
				writeJSON(ctx, fasthttp.StatusOK, struct {
					Webhooks []WebhookEndpoint `json:"webhooks"`
				}{out})
			})
		default:
			methodNotAllowed(ctx, "GET, POST")
		}
		return
	}
	id := strings.TrimPrefix(path, "/api/webhooks/")
	if id == "" || strings.Contains(id, "/") {
		writeError(ctx, fmt.Errorf("%w: use /api/webhooks or /api/webhooks/{id}", ErrNotFound))
		return
	}
	switch method {
	case fasthttp.MethodPost:
		s.handleDelivery(ctx, id)
	case fasthttp.MethodDelete:
		s.withTenant(ctx, tenant.ScopeFull, func(t tenant.Tenant) {
			if err := s.cfg.Webhooks.Delete(t.ID, id); err != nil {
				writeError(ctx, webhookStoreError(err))
				return
			}
			s.log.Info("webhook endpoint deleted", zap.String("tenant", t.ID), zap.String("webhook", id))
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		})
	default:
		methodNotAllowed(ctx, "POST, DELETE")
	}
}

// webhookStoreError maps a hookstore or registration error to this
// package's errors, for statusOf.
func webhookStoreError(err error) error {
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.Is(err, webhook.ErrLimit), errors.Is(err, webhook.ErrBadSecret), errors.Is(err, webhook.ErrUnknownProvider):
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return err
}

func (s *Server) handleCreateWebhook(ctx *fasthttp.RequestCtx, t tenant.Tenant) {
	body := ctx.PostBody()
	if len(body) > maxRegistrationBody {
		writeError(ctx, fmt.Errorf("%w: the registration body is %d bytes; it holds three short strings, at most %d bytes", ErrBadRequest, len(body), maxRegistrationBody))
		return
	}
	var req struct {
		Provider string `json:"provider"`
		Table    string `json:"table"`
		Secret   string `json:"secret"`
	}
	if err := decodeJSON(body, &req); err != nil {
		writeError(ctx, err)
		return
	}
	p, ok := webhook.ParseProvider(req.Provider)
	if !ok {
		writeError(ctx, fmt.Errorf("%w: provider %q: use one of stripe, github, shopify, standard", ErrBadRequest, truncate([]byte(req.Provider))))
		return
	}
	if !schema.ValidTableName(req.Table) {
		writeError(ctx, fmt.Errorf("%w: %q: use letters, digits and underscore, starting with a letter or underscore, at most 63 characters", ErrBadTable, truncate([]byte(req.Table))))
		return
	}
	e, err := s.cfg.Webhooks.Create(t.ID, p, req.Table, req.Secret)
	if err != nil {
		writeError(ctx, webhookStoreError(err))
		return
	}
	s.log.Info("webhook endpoint created", zap.String("tenant", t.ID), zap.String("webhook", e.ID),
		zap.String("provider", string(e.Provider)), zap.String("table", e.Table))
	writeJSON(ctx, fasthttp.StatusCreated, endpointView(e))
}

// handleDelivery verifies and stores one provider delivery.
func (s *Server) handleDelivery(ctx *fasthttp.RequestCtx, id string) {
	e, secret, err := s.cfg.Webhooks.Lookup(id)
	if err != nil {
		writeError(ctx, webhookStoreError(err))
		return
	}
	if enc := ctx.Request.Header.Peek(fasthttp.HeaderContentEncoding); len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity")) {
		// Providers sign the body as sent; none compresses it.
		writeJSON(ctx, fasthttp.StatusUnsupportedMediaType, errorBody{Error: fmt.Sprintf(
			"Content-Encoding %q is not supported for webhooks: send the body uncompressed, as the provider signs it", truncate(enc))})
		return
	}
	body := ctx.PostBody()
	v := webhook.Verifier{Provider: e.Provider, Tolerance: s.cfg.WebhookTolerance}
	d, err := v.Verify(secret, func(name string) string { return string(ctx.Request.Header.Peek(name)) }, body)
	switch {
	case err == nil:
	case errors.Is(err, webhook.ErrMissingSignature), errors.Is(err, webhook.ErrMalformedSignature),
		errors.Is(err, webhook.ErrBadSignature), errors.Is(err, webhook.ErrStaleTimestamp):
		s.log.Debug("webhook delivery rejected", zap.String("webhook", e.ID), zap.Error(err))
		msg := err.Error()
		if errors.Is(err, webhook.ErrBadSignature) {
			msg += ": check that the endpoint was registered with the provider's signing secret"
		}
		writeJSON(ctx, fasthttp.StatusUnauthorized, errorBody{Error: msg})
		return
	case errors.Is(err, webhook.ErrMalformedBody):
		writeError(ctx, fmt.Errorf("%w: %v", ErrBadBody, err))
		return
	default:
		s.log.Error("webhook endpoint cannot verify", zap.String("webhook", e.ID), zap.Error(err))
		writeError(ctx, err)
		return
	}
	t, err := s.cfg.Tenants.Get(e.TenantID)
	if err != nil {
		writeError(ctx, fmt.Errorf("%w: webhook endpoint %q", ErrNotFound, e.ID))
		return
	}
	if t.Status != tenant.StatusActive {
		writeError(ctx, fmt.Errorf("%w: tenant %s is %s; deliveries are refused until it is resumed", ErrForbidden, t.ID, t.Status))
		return
	}
	payload := body
	if e.Provider == webhook.GitHub && bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
		// GitHub's "Content type: application/x-www-form-urlencoded"
		// setting sends payload=<JSON>, and signs that form body.
		payload = ctx.PostArgs().Peek("payload")
	}
	rows, err := webhookRow(d, time.Now(), payload)
	if err != nil {
		writeError(ctx, err)
		return
	}

	var claim *webhook.Claim
	if d.ID != "" {
		cctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		c, dup, err := s.cfg.Webhooks.Claim(cctx, e.ID, d.ID)
		cancel()
		if err != nil {
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, errorBody{Error: err.Error() + "; retry the delivery"})
			return
		}
		if dup {
			writeJSON(ctx, fasthttp.StatusOK, WebhookResponse{Duplicate: true})
			return
		}
		claim = c
	}
	if !s.admitRows(ctx, t, 1) { // the plan's rate limit and storage quota, as for inserts
		if claim != nil {
			claim.Release()
		}
		return
	}
	// The delivery id also travels with the row in the write-ahead log as
	// an idempotency key, so a crash between the log write and the seen-log
	// write still stores the delivery once: the redelivery finds the key.
	var idemKey string
	if d.ID != "" {
		idemKey = "webhook:" + e.ID + ":" + d.ID
		_, found, err := s.cfg.Batcher.BeginIdempotent(t.ID, idemKey)
		if err != nil || found {
			if found {
				if cerr := claim.Commit(); cerr != nil {
					s.log.Error("webhook delivery id not persisted", zap.String("webhook", e.ID), zap.Error(cerr))
				}
				writeJSON(ctx, fasthttp.StatusOK, WebhookResponse{Duplicate: true})
				return
			}
			claim.Release()
			writeError(ctx, err)
			return
		}
	}
	if _, err := s.cfg.Batcher.Submit(batcher.Request{Tenant: t.ID, Table: e.Table, Rows: rows,
		IdempotencyKey: idemKey, Response: []byte(`{"duplicate":true}`)}); err != nil {
		if claim != nil {
			claim.Release()
			s.cfg.Batcher.AbortIdempotent(t.ID, idemKey)
		}
		writeError(ctx, err)
		return
	}
	s.noteIngest(t.ID)
	if claim != nil {
		if err := claim.Commit(); err != nil {
			// The row is queued: answering an error would make the
			// provider send it again. The id stays seen until a restart.
			s.log.Error("webhook delivery id not persisted", zap.String("webhook", e.ID), zap.Error(err))
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, WebhookResponse{})
}

// webhookRow turns a verified delivery into one row: the metadata columns,
// then the payload's top-level fields decoded as an insert would, or the
// whole payload in a "payload" JSON column if it is not an object.
func webhookRow(d webhook.Delivery, received time.Time, payload []byte) (*batcher.Rows, error) {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(payload, []byte("\xef\xbb\xbf")))
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: the delivery body is empty", ErrBadBody)
	}
	p := parserPool.Get()
	defer parserPool.Put(p)
	v, err := p.ParseBytes(trimmed)
	if err != nil {
		return nil, fmt.Errorf("%w: the delivery is not JSON (%s): set the sender's content type to application/json", ErrBadBody, shortErr(err))
	}
	b := batcher.NewBuilder()
	if d.ID != "" {
		b.AddString(colWebhookID, []byte(strings.ToValidUTF8(d.ID, "\uFFFD")))
	}
	if d.Event != "" {
		b.AddString(colWebhookEvent, []byte(strings.ToValidUTF8(d.Event, "\uFFFD")))
	}
	b.AddString(colReceivedAt, received.UTC().AppendFormat(nil, receivedAtLayout))
	if v.Type() == fastjson.TypeObject {
		dec := decoder{b: b}
		if msg := dec.row(v); msg != "" {
			return nil, fmt.Errorf("%w: %s", ErrBadBody, msg)
		}
		return b.Rows(), nil
	}
	text := v.MarshalTo(nil)
	if !utf8.Valid(text) {
		return nil, fmt.Errorf("%w: the delivery is not valid UTF-8", ErrBadBody)
	}
	b.AddJSON(colPayload, text)
	b.EndRow()
	return b.Rows(), nil
}
