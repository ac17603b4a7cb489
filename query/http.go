package query

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
)

// HandleQuery serves GET and POST /api/data/query for an authenticated tenant.
//
//	GET: query=..., format=json|ndjson|csv|parquet, timeout=<seconds>, flush=true,
//	     params=<JSON array>
//	POST, Content-Type application/json: {"query":"...","params":[...],"format":"...",
//	     "timeout":<seconds>,"flush":true}; query-string arguments fill what the body lacks
//	POST, any other content type: the body is the SQL text; the rest in the query string
//
// It returns nil once the response is committed (see Stream); otherwise
// it has written nothing and returns an error wrapping a sentinel of
// errors.go (or a server fault), for the caller to answer.
func (e *Engine) HandleQuery(ctx *fasthttp.RequestCtx, tenantID string) error {
	req, err := parseRequest(ctx, e.cfg.MaxSQLBytes)
	if err != nil {
		return err
	}
	if done, err := e.serveCached(ctx, tenantID, &req); done || err != nil {
		return err
	}
	return e.Stream(ctx, tenantID, req, "")
}

// queryBody is the JSON body of POST /api/data/query.
type queryBody struct {
	Query   *string         `json:"query"`
	Params  []any           `json:"params"`
	Format  *string         `json:"format"`
	Timeout json.RawMessage `json:"timeout"`
	Flush   *bool           `json:"flush"`
}

// parseRequest reads a Request from ctx. Everything is copied: nothing of
// ctx is kept.
func parseRequest(ctx *fasthttp.RequestCtx, maxSQL int) (Request, error) {
	var req Request
	args := ctx.QueryArgs()
	q := string(args.Peek("query"))
	if q == "" {
		q = string(args.Peek("q"))
	}
	format := string(args.Peek("format"))
	timeout := string(args.Peek("timeout"))
	flush := string(args.Peek("flush"))
	var params []any
	if p := args.Peek("params"); len(p) > 0 {
		if err := decodeJSON(p, &params); err != nil {
			return req, fmt.Errorf("%w: params must be a JSON array: %v", ErrBadRequest, err)
		}
	}

	if ctx.IsPost() {
		body := ctx.PostBody()
		ct := string(ctx.Request.Header.ContentType())
		if mt, _, _ := strings.Cut(ct, ";"); strings.EqualFold(strings.TrimSpace(mt), "application/json") {
			var jb queryBody
			if err := decodeJSON(body, &jb); err != nil {
				return req, fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err)
			}
			if jb.Query != nil {
				q = *jb.Query
			}
			if jb.Params != nil {
				params = jb.Params
			}
			if jb.Format != nil {
				format = *jb.Format
			}
			if len(jb.Timeout) > 0 && string(jb.Timeout) != "null" {
				timeout = strings.Trim(string(jb.Timeout), `"`)
			}
			if jb.Flush != nil {
				flush = strconv.FormatBool(*jb.Flush)
			}
		} else if len(bytes.TrimSpace(body)) > 0 {
			q = string(body)
		}
	}

	var err error
	if req.Format, err = ParseFormat(format); err != nil {
		return req, err
	}
	if timeout != "" {
		s, err := strconv.ParseFloat(timeout, 64)
		if err != nil || math.IsNaN(s) || s <= 0 || s > 1e6 {
			return req, fmt.Errorf("%w: timeout must be a positive number of seconds, not %q", ErrBadRequest, timeout)
		}
		req.Timeout = time.Duration(s * float64(time.Second))
	}
	if flush != "" {
		if req.Flush, err = strconv.ParseBool(flush); err != nil {
			return req, fmt.Errorf("%w: flush must be true or false, not %q", ErrBadRequest, flush)
		}
	}
	if err := checkText(q, maxSQL); err != nil {
		return req, err
	}
	req.SQL = q
	req.Params = params
	return req, nil
}

func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// bindParams converts request params for the driver: JSON numbers become
// int64, *big.Int (integers beyond int64) or float64; strings, booleans,
// null and arrays of them stay. Objects are refused.
func bindParams(in []any) ([]any, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]any, len(in))
	for i, v := range in {
		c, err := bindParam(v)
		if err != nil {
			return nil, fmt.Errorf("%w: param %d: %v", ErrBadRequest, i+1, err)
		}
		out[i] = c
	}
	return out, nil
}

func bindParam(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		s := v.String()
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if !strings.ContainsAny(s, ".eE") {
			if n, ok := new(big.Int).SetString(s, 10); ok {
				return n, nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %s", s)
		}
		return f, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := bindParam(e)
			if err != nil {
				return nil, err
			}
			if _, nested := c.([]any); nested {
				return nil, errors.New("nested arrays are not supported")
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		return nil, errors.New("objects are not supported: pass a JSON string and cast it ($1::JSON)")
	}
	return v, nil
}
