package admin

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// The dashboard's sign-in errors; package api maps them to a status.
var (
	// ErrSignIn means a sign-in with a wrong key, a tenant's key or no key
	// (401).
	ErrSignIn = errors.New("sign-in refused: send the admin key (-admin-key), not a tenant's API key")
	// ErrNoSession means a dashboard request without a live session cookie
	// (401): sign in again.
	ErrNoSession = errors.New("not signed in, or the session expired: sign in at /admin/ with the admin key")
	// ErrCSRF means a dashboard request whose X-CSRF-Token header is missing
	// or is not its session's token, or a sign-in posted from another
	// origin (403). Nothing was changed.
	ErrCSRF = errors.New("missing or wrong X-CSRF-Token for this session: reload /admin/")
)

const (
	// SessionCookie is the dashboard's session cookie. It holds a random
	// id, never the admin key.
	SessionCookie = "duckgate_admin"
	// CSRFHeader carries the session's CSRF token on every /admin/api/...
	// request and on sign-out.
	CSRFHeader = "X-CSRF-Token"
	// SessionTTL is how long a session lives after sign-in: a working day,
	// so that a forgotten tab does not stay signed in for good.
	SessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept in memory; signing in past it
	// drops the oldest. Only the admin key can create one.
	maxSessions = 1000
)

// session is one signed-in browser.
type session struct {
	csrf    string
	expires time.Time
}

// sessions are the dashboard's sign-ins, kept in memory only: a restart
// signs everyone out.
type sessions struct {
	mu   sync.Mutex
	byID map[[32]byte]*session // key: sha256 of the cookie value; guarded by mu
	now  func() time.Time
}

func newSessions() *sessions {
	return &sessions{byID: make(map[[32]byte]*session), now: time.Now}
}

// randomToken is 256 random bits, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session and returns its cookie value.
func (s *sessions) create() (id string, sess session) {
	id = randomToken()
	sess = session{csrf: randomToken(), expires: s.now().Add(SessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, k)
		}
	}
	for len(s.byID) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.byID {
			if at.IsZero() || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[sha256.Sum256([]byte(id))] = &sess
	return id, sess
}

// get returns the live session of a cookie value.
func (s *sessions) get(id []byte) (session, bool) {
	if len(id) == 0 {
		return session{}, false
	}
	k := sha256.Sum256(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[k]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(sess.expires) {
		delete(s.byID, k)
		return session{}, false
	}
	return *sess, true
}

// remove ends a session.
func (s *sessions) remove(id []byte) {
	k := sha256.Sum256(id)
	s.mu.Lock()
	delete(s.byID, k)
	s.mu.Unlock()
}

// SessionInfo is the answer to a sign-in and to GET /admin/session: the
// token the page sends in X-CSRF-Token, and when the session ends.
type SessionInfo struct {
	CSRFToken string    `json:"csrf_token"`
	Expires   time.Time `json:"expires"`
	// Plans are the plan names a tenant may be put on.
	Plans []string `json:"plans"`
}

// Login serves POST /admin/login: the admin key, as a form field "key" or
// JSON {"key":"..."}, is exchanged for a session cookie (HttpOnly,
// SameSite=Strict, Path=/admin, Secure over TLS or behind a proxy that
// says X-Forwarded-Proto: https). A JSON sign-in is answered with the
// session's CSRF token; a form sign-in is redirected to /admin/. A sign-in
// whose Origin header is not this host's is refused (ErrCSRF).
func (h *Handler) Login(ctx *fasthttp.RequestCtx) (any, error) {
	if err := sameOrigin(ctx); err != nil {
		return nil, err
	}
	form := bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded"))
	var key []byte
	if form {
		key = ctx.PostArgs().Peek("key")
	} else {
		var req struct {
			Key string `json:"key"`
		}
		if err := decodeJSON(ctx.PostBody(), &req); err != nil {
			return nil, err
		}
		key = []byte(req.Key)
	}
	if !h.cfg.Tenants.IsAdmin(key) {
		h.log.Info("dashboard sign-in refused", zap.String("remote", ctx.RemoteIP().String()))
		return nil, ErrSignIn
	}
	id, sess := h.sessions.create()
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(SessionCookie)
	c.SetValue(id)
	c.SetPath("/admin")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetMaxAge(int(SessionTTL / time.Second))
	c.SetSecure(isTLS(ctx))
	ctx.Response.Header.SetCookie(c)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	h.log.Info("dashboard signed in", zap.String("remote", ctx.RemoteIP().String()))
	if form {
		ctx.Redirect("/admin/", fasthttp.StatusSeeOther)
		return nil, nil
	}
	return SessionInfo{CSRFToken: sess.csrf, Expires: sess.expires.UTC(), Plans: h.cfg.Tenants.PlanNames()}, nil
}

// Session serves GET /admin/session: the signed-in page's CSRF token, or
// ErrNoSession. Another origin cannot read the answer (no CORS header) and
// SameSite=Strict keeps the cookie off its requests.
func (h *Handler) Session(ctx *fasthttp.RequestCtx) (any, error) {
	sess, ok := h.sessions.get(ctx.Request.Header.Cookie(SessionCookie))
	if !ok {
		return nil, ErrNoSession
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	return SessionInfo{CSRFToken: sess.csrf, Expires: sess.expires.UTC(), Plans: h.cfg.Tenants.PlanNames()}, nil
}

// CheckSession returns nil if the request carries a live session cookie
// and that session's token in X-CSRF-Token; ErrNoSession or ErrCSRF if
// not. Package api calls it before every /admin/api/... request, reads
// included.
func (h *Handler) CheckSession(ctx *fasthttp.RequestCtx) error {
	sess, ok := h.sessions.get(ctx.Request.Header.Cookie(SessionCookie))
	if !ok {
		return ErrNoSession
	}
	got := ctx.Request.Header.Peek(CSRFHeader)
	if len(got) == 0 || subtle.ConstantTimeCompare(got, []byte(sess.csrf)) != 1 {
		return ErrCSRF
	}
	return nil
}

// Logout serves POST /admin/logout (session and CSRF token required): the
// session ends and the cookie is cleared.
func (h *Handler) Logout(ctx *fasthttp.RequestCtx) (any, error) {
	if err := h.CheckSession(ctx); err != nil {
		return nil, err
	}
	h.sessions.remove(ctx.Request.Header.Cookie(SessionCookie))
	ctx.Response.Header.DelClientCookie(SessionCookie)
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(SessionCookie)
	c.SetPath("/admin")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetExpire(fasthttp.CookieExpireDelete)
	c.SetSecure(isTLS(ctx))
	ctx.Response.Header.SetCookie(c)
	return map[string]bool{"signed_out": true}, nil
}

// isTLS reports whether the browser reached us over TLS, directly or
// through a proxy that says so.
func isTLS(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsTLS() || bytes.EqualFold(ctx.Request.Header.Peek("X-Forwarded-Proto"), []byte("https"))
}

// sameOrigin refuses a request whose Origin header names another host
// than the one it was sent to (its Host, or the X-Forwarded-Host of a
// proxy in front). Browsers send Origin on every POST, and a page cannot
// forge it or add X-Forwarded-Host to a cross-site form; a client that
// sends no Origin (curl) is let through.
func sameOrigin(ctx *fasthttp.RequestCtx) error {
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return nil
	}
	_, host, ok := bytes.Cut(origin, []byte("://"))
	if ok && (bytes.EqualFold(host, ctx.Request.Header.Host()) || bytes.EqualFold(host, ctx.Request.Header.Peek("X-Forwarded-Host"))) {
		return nil
	}
	return fmt.Errorf("%w (Origin %.64q is not this host)", ErrCSRF, origin)
}
