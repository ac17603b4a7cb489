package query

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
)

const jsonDocsSQL = `CREATE TABLE docs (id INTEGER, j JSON, s VARCHAR, h HUGEINT, ts TIMESTAMPTZ);
	INSERT INTO docs VALUES
	(1, '{"z":1,"a":12345678901234567890123,"n":[1.5,{"k":null}]}', 'a,b', 170141183460469231731687303715884105727, '2024-01-02 03:04:05.5+00'),
	(2, '"text"', 'x', -1, NULL),
	(3, '42', '', 0, NULL),
	(4, NULL, NULL, NULL, NULL),
	(5, ' {"b" : [ 1 ,
	 2 ], "s":"a  b"} ', 'ws', 1, NULL),
	(6, '[1,]', 'not JSON per RFC 8259, taken by DuckDB', 2, NULL)`

// TestJSONColumnsLossless: JSON columns come out as DuckDB holds them (key
// order, every digit) in every format, beside other types.
func TestJSONColumnsLossless(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	env.exec(t, "t1", jsonDocsSQL)
	q := "select id, j, s, h, ts from docs order by id"

	wantRows := []string{
		`{"id":1,"j":{"z":1,"a":12345678901234567890123,"n":[1.5,{"k":null}]},"s":"a,b","h":170141183460469231731687303715884105727,"ts":"2024-01-02T03:04:05.500000Z"}`,
		`{"id":2,"j":"text","s":"x","h":-1,"ts":null}`,
		`{"id":3,"j":42,"s":"","h":0,"ts":null}`,
		`{"id":4,"j":null,"s":null,"h":null,"ts":null}`,
		`{"id":5,"j":{"b":[1,2],"s":"a  b"},"s":"ws","h":1,"ts":null}`,
		`{"id":6,"j":"[1,]","s":"not JSON per RFC 8259, taken by DuckDB","h":2,"ts":null}`,
	}
	r := env.query(t, "t1", q).ok(t)
	if want := "[\n" + strings.Join(wantRows, ",\n") + "\n]\n"; string(r.body) != want {
		t.Errorf("json:\ngot  %s\nwant %s", r.body, want)
	}
	if !json.Valid(r.body) {
		t.Errorf("json: invalid output")
	}

	r = env.query(t, "t1", q, "format", "ndjson").ok(t)
	if want := strings.Join(wantRows, "\n") + "\n"; string(r.body) != want {
		t.Errorf("ndjson:\ngot  %s\nwant %s", r.body, want)
	}

	r = env.query(t, "t1", "select id, j from docs order by id", "format", "csv").ok(t)
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("csv %q: %v", r.body, err)
	}
	wantCSV := [][]string{
		{"id", "j"},
		{"1", `{"z":1,"a":12345678901234567890123,"n":[1.5,{"k":null}]}`},
		{"2", `"text"`},
		{"3", "42"},
		{"4", ""},
		{"5", " {\"b\" : [ 1 ,\n\t 2 ], \"s\":\"a  b\"} "},
		{"6", "[1,]"},
	}
	if got, w := asJSON(recs), asJSON(wantCSV); got != w {
		t.Errorf("csv:\ngot  %s\nwant %s", got, w)
	}
}

func TestJSONColumnsQueries(t *testing.T) {
	env := newEnv(t, Config{}, nil)
	env.exec(t, "t1", jsonDocsSQL)
	big := `{"z":1,"a":12345678901234567890123,"n":[1.5,{"k":null}]}`
	f := func(r response, want string) {
		t.Helper()
		r.ok(t)
		if string(r.body) != want {
			t.Fatalf("got  %s\nwant %s", r.body, want)
		}
	}
	// Params still bind: $n and ?, and a JSON param whose type is unknown
	// until bound.
	f(env.do(t, "t1", "POST", "/api/data/query", "application/json",
		[]byte(`{"query":"select j from docs where id = $1","params":[1],"format":"ndjson"}`)), `{"j":`+big+"}\n")
	f(env.do(t, "t1", "POST", "/api/data/query", "application/json",
		[]byte(`{"query":"select ? as p, j from docs where id = ?","params":["x",3],"format":"ndjson"}`)), `{"p":"x","j":42}`+"\n")
	f(env.query(t, "t1", "select $1::JSON as j", "params", `["{\"b\":1,\"a\":12345678901234567890123}"]`, "format", "ndjson"),
		`{"j":{"b":1,"a":12345678901234567890123}}`+"\n")

	// Duplicate and quoted names keep their names and order.
	f(env.query(t, "t1", `select j as a, id as a, j as "a""b" from docs where id = 1`, "format", "ndjson"),
		`{"a":`+big+`,"a_1":1,"a\"b":`+big+"}\n")
	f(env.query(t, "t1", `select j as a, id as a from docs where id = 2`, "format", "csv"), "a,a\r\n\"\"\"text\"\"\",2\r\n")

	// A trailing comment, a trailing semicolon, a CTE, a UNION, FROM first.
	f(env.query(t, "t1", "select j from docs where id = 1 -- the end", "format", "ndjson"), `{"j":`+big+"}\n")
	f(env.query(t, "t1", "select j from docs where id = 1;\n", "format", "ndjson"), `{"j":`+big+"}\n")
	// A semicolon before a comment cannot be wrapped: the decoded path.
	f(env.query(t, "t1", "select j from docs where id = 3; -- the end", "format", "ndjson"), `{"j":42}`+"\n")
	f(env.query(t, "t1", "with d as (select * from docs) select j from d where id = 2 union all select '[1]'::JSON", "format", "ndjson"),
		`{"j":"text"}`+"\n"+`{"j":[1]}`+"\n")
	f(env.query(t, "t1", "from docs select j where id = 3", "format", "ndjson"), `{"j":42}`+"\n")
	f(env.query(t, "t1", "pivot (select s, j from docs where id = 1) on s in ('a,b') using first(j)", "format", "ndjson"),
		`{"a,b":`+big+"}\n")

	// The order of the tenant's ORDER BY is kept through the wrapping.
	q := "select i, i::VARCHAR::JSON as j from range(20000) t(i) order by hash(i)"
	wrapped := env.query(t, "t1", q, "format", "csv").ok(t).body
	plain := env.query(t, "t1", "select i, i as j from range(20000) t(i) order by hash(i)", "format", "csv").ok(t).body
	if !bytes.Equal(wrapped, plain) {
		t.Fatalf("order changed:\n%.200s\n%.200s", wrapped, plain)
	}

	// Still sandboxed: one SELECT only.
	if r := env.query(t, "t1", "select j from docs; drop table docs"); r.status != 400 {
		t.Fatalf("two statements: %d %s", r.status, r.body)
	}
	f(env.query(t, "t1", "select count(*) as n from docs", "format", "csv"), "n\r\n6\r\n")
}

func TestAppendJSONText(t *testing.T) {
	f := func(text, want string) {
		t.Helper()
		got := string(appendJSONText([]byte("x"), text))
		if got != "x"+want {
			t.Fatalf("appendJSONText(%q) = %q; want %q", text, got[1:], want)
		}
	}
	f(`{"z":1,"a":12345678901234567890123}`, `{"z":1,"a":12345678901234567890123}`)
	f(" [ 1 ,\r\n\t2 ] ", "[1,2]")
	f(`{"a b" : "c \" d\\" , "e":" "}`, `{"a b":"c \" d\\","e":" "}`)
	f(`"\u2028"`, `"\u2028"`)
	f(`1e400`, `1e400`)
	f(`NaN`, `"NaN"`)
	f(`[1,]`, `"[1,]"`)
	f(`{"a":1,"a":2}`, `{"a":1,"a":2}`)
}

func TestWrapRawJSON(t *testing.T) {
	got := wrapRawJSON("select 1 a, j, 2 \"x\"\"y\" from t -- c\n;\n", []string{"a", "j", `x"y`}, []bool{false, true, false})
	want := `SELECT #1 AS "a", #2::VARCHAR AS "j", #3 AS "x""y" FROM (select 1 a, j, 2 "x""y" from t -- c` + "\n) AS q"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
