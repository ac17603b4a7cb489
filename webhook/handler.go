package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/ingest"
	"duckgate/schema"
	"duckgate/tenant"
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

// Config configures a Handler.
type Config struct {
	// Store keeps the endpoints and the delivery ids seen. Required.
	Store *Store
	// Tenants is the registry: a delivery's tenant must exist and be
	// active. Required.
	Tenants *tenant.Store
	// Batcher takes the delivery's row. Required.
	Batcher *batcher.Batcher
	// Ingest admits the row against the tenant's plan, as for an insert.
	// Required.
	Ingest *ingest.Handler
	// Tolerance is how far a Stripe or Standard Webhooks signed timestamp
	// may be from now. Default DefaultTolerance (5 min).
	Tolerance time.Duration
}

// Handler serves webhook registration and deliveries.
type Handler struct {
	cfg Config
	log *zap.Logger
}

// NewHandler returns a Handler.
func NewHandler(cfg Config, log *zap.Logger) *Handler {
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultTolerance
	}
	return &Handler{cfg: cfg, log: log}
}

// EndpointView is an endpoint as the API shows it: never its secret.
type EndpointView struct {
	ID       string    `json:"id"`
	URL      string    `json:"url"`
	Provider string    `json:"provider"`
	Table    string    `json:"table"`
	Created  time.Time `json:"created"`
}

// DeliveryResponse is the answer to an accepted delivery.
type DeliveryResponse struct {
	// Duplicate is true when the delivery id was stored before: nothing
	// was stored this time.
	Duplicate bool `json:"duplicate"`
}

func endpointView(e Endpoint) EndpointView {
	return EndpointView{ID: e.ID, URL: "/api/webhooks/" + e.ID, Provider: string(e.Provider), Table: e.Table, Created: e.Created}
}

// List serves GET /api/webhooks: the tenant's endpoints.
func (h *Handler) List(_ *fasthttp.RequestCtx, t tenant.Tenant) (any, error) {
	list := h.cfg.Store.List(t.ID)
	out := make([]EndpointView, len(list))
	for i, e := range list {
		out[i] = endpointView(e)
	}
	return struct {
		Webhooks []EndpointView `json:"webhooks"`
	}{out}, nil
}

// Delete serves DELETE /api/webhooks/{id}: 204, or ErrNotFound for an id
// that is not the tenant's.
func (h *Handler) Delete(ctx *fasthttp.RequestCtx, t tenant.Tenant, id string) (any, error) {
	if err := h.cfg.Store.Delete(t.ID, id); err != nil {
		return nil, err
	}
	h.log.Info("webhook endpoint deleted", zap.String("tenant", t.ID), zap.String("webhook", id))
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil, nil
}

// Create serves POST /api/webhooks: 201 with the endpoint.
func (h *Handler) Create(ctx *fasthttp.RequestCtx, t tenant.Tenant) (any, error) {
	body := ctx.PostBody()
	if len(body) > maxRegistrationBody {
		return nil, fmt.Errorf("%w: the registration body is %d bytes; it holds three short strings, at most %d bytes", ErrBadRequest, len(body), maxRegistrationBody)
	}
	var req struct {
		Provider string `json:"provider"`
		Table    string `json:"table"`
		Secret   string `json:"secret"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: the body is empty; send {\"provider\",\"table\",\"secret\"}", ErrBadRequest)
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err)
	}
	p, ok := ParseProvider(req.Provider)
	if !ok {
		return nil, fmt.Errorf("%w: provider %q: use one of stripe, github, shopify, standard", ErrBadRequest, truncate(req.Provider))
	}
	if err := schema.CheckTableName(req.Table); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	e, err := h.cfg.Store.Create(t.ID, p, req.Table, req.Secret)
	if err != nil {
		if errors.Is(err, ErrBadSecret) || errors.Is(err, ErrUnknownProvider) {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return nil, err
	}
	h.log.Info("webhook endpoint created", zap.String("tenant", t.ID), zap.String("webhook", e.ID),
		zap.String("provider", string(e.Provider)), zap.String("table", e.Table))
	ctx.SetStatusCode(fasthttp.StatusCreated)
	return endpointView(e), nil
}

// Deliver serves POST /api/webhooks/{id}: verifies and stores one provider
// delivery. No API key: the signature is the authentication. It returns the
// endpoint's provider ("" for an unknown endpoint), for the caller's
// counters, with the answer or the error.
func (h *Handler) Deliver(ctx *fasthttp.RequestCtx, id string) (Provider, any, error) {
	e, secret, err := h.cfg.Store.Lookup(id)
	if err != nil {
		return "", nil, err
	}
	v, err := h.deliver(ctx, e, secret)
	return e.Provider, v, err
}

// deliver verifies and stores a delivery to endpoint e.
func (h *Handler) deliver(ctx *fasthttp.RequestCtx, e Endpoint, secret string) (any, error) {
	if enc := ctx.Request.Header.Peek(fasthttp.HeaderContentEncoding); len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity")) {
		// Providers sign the body as sent; none compresses it.
		return nil, fmt.Errorf("%w: Content-Encoding %q is not supported for webhooks: send the body uncompressed, as the provider signs it", ErrEncoding, truncate(string(enc)))
	}
	body := ctx.PostBody()
	v := Verifier{Provider: e.Provider, Tolerance: h.cfg.Tolerance}
	d, err := v.Verify(secret, func(name string) string { return string(ctx.Request.Header.Peek(name)) }, body)
	switch {
	case err == nil:
	case errors.Is(err, ErrMissingSignature), errors.Is(err, ErrMalformedSignature), errors.Is(err, ErrStaleTimestamp):
		h.log.Debug("webhook delivery rejected", zap.String("webhook", e.ID), zap.Error(err))
		return nil, err
	case errors.Is(err, ErrBadSignature):
		h.log.Debug("webhook delivery rejected", zap.String("webhook", e.ID), zap.Error(err))
		return nil, fmt.Errorf("%w: check that the endpoint was registered with the provider's signing secret", err)
	case errors.Is(err, ErrMalformedBody):
		return nil, err
	default:
		// Our stored endpoint is broken (ErrBadSecret, ErrUnknownProvider):
		// a server fault, not the sender's.
		h.log.Error("webhook endpoint cannot verify", zap.String("webhook", e.ID), zap.Error(err))
		return nil, fmt.Errorf("webhook endpoint %s cannot verify deliveries: %v", e.ID, err.Error())
	}
	t, err := h.cfg.Tenants.Get(e.TenantID)
	if err != nil {
		return nil, fmt.Errorf("%w: webhook endpoint %q", ErrNotFound, e.ID)
	}
	if t.Status != tenant.StatusActive {
		return nil, fmt.Errorf("%w: tenant %s is %s; deliveries are refused until it is resumed", ErrForbidden, t.ID, t.Status)
	}
	payload := body
	if e.Provider == GitHub && bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
		// GitHub's "Content type: application/x-www-form-urlencoded"
		// setting sends payload=<JSON>, and signs that form body.
		payload = ctx.PostArgs().Peek("payload")
	}
	rows, err := deliveryRow(d, time.Now(), payload)
	if err != nil {
		return nil, err
	}

	var claim *Claim
	if d.ID != "" {
		cctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		c, dup, err := h.cfg.Store.Claim(cctx, e.ID, d.ID)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: %v; retry the delivery", ErrBusy, err)
		}
		if dup {
			return DeliveryResponse{Duplicate: true}, nil
		}
		claim = c
	}
	// The plan's rate limit and storage quota, as for inserts.
	if err := h.cfg.Ingest.Admit(t, 1); err != nil {
		if claim != nil {
			claim.Release()
		}
		return nil, err
	}
	// The delivery id also travels with the row in the write-ahead log as
	// an idempotency key, so a crash between the log write and the seen-log
	// write still stores the delivery once: the redelivery finds the key.
	var idemKey string
	if d.ID != "" {
		idemKey = "webhook:" + e.ID + ":" + d.ID
		_, found, err := h.cfg.Batcher.BeginIdempotent(t.ID, idemKey)
		if found {
			if cerr := claim.Commit(); cerr != nil {
				h.log.Error("webhook delivery id not persisted", zap.String("webhook", e.ID), zap.Error(cerr))
			}
			return DeliveryResponse{Duplicate: true}, nil
		}
		if err != nil {
			claim.Release()
			return nil, err
		}
	}
	if _, err := h.cfg.Batcher.Submit(batcher.Request{Tenant: t.ID, Table: e.Table, Rows: rows,
		IdempotencyKey: idemKey, Response: []byte(`{"duplicate":true}`)}); err != nil {
		if claim != nil {
			claim.Release()
			h.cfg.Batcher.AbortIdempotent(t.ID, idemKey)
		}
		return nil, err
	}
	h.cfg.Ingest.NoteAccepted(t.ID, 1, len(body))
	if claim != nil {
		if err := claim.Commit(); err != nil {
			// The row is queued: answering an error would make the
			// provider send it again. The id stays seen until a restart.
			h.log.Error("webhook delivery id not persisted", zap.String("webhook", e.ID), zap.Error(err))
		}
	}
	return DeliveryResponse{}, nil
}

// deliveryRow turns a verified delivery into one row: the metadata columns,
// then the payload's top-level fields decoded as an insert would, or the
// whole payload in a "payload" JSON column if it is not an object.
func deliveryRow(d Delivery, received time.Time, payload []byte) (*batcher.Rows, error) {
	b := batcher.NewBuilder()
	if d.ID != "" {
		b.AddString(colWebhookID, []byte(strings.ToValidUTF8(d.ID, "\uFFFD")))
	}
	if d.Event != "" {
		b.AddString(colWebhookEvent, []byte(strings.ToValidUTF8(d.Event, "\uFFFD")))
	}
	b.AddString(colReceivedAt, received.UTC().AppendFormat(nil, receivedAtLayout))
	if err := ingest.DecodeOne(b, payload, colPayload); err != nil {
		return nil, fmt.Errorf("the delivery cannot be stored: %w; set the sender's content type to application/json", err)
	}
	return b.Rows(), nil
}
