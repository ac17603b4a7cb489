package api

import (
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"duckgate/ingest"
)

// scenario is one file under testdata/scenarios: requests sent in order,
// then the schema and values they must produce, checked in the database
// file after a clean stop.
type scenario struct {
	// Requests are inserts, each sent with wait=true.
	Requests []struct {
		Table string `json:"table"`
		// Body is sent as is; BodyJSON is marshalled when Body is empty.
		Body     string          `json:"body"`
		BodyJSON json.RawMessage `json:"body_json"`
		Gzip     bool            `json:"gzip"`
		// Status and the insert counts expected; 0 status means 200.
		Status   int `json:"status"`
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
	} `json:"requests"`
	// Columns maps a table to its [name, type] pairs in order.
	Columns map[string][][2]string `json:"columns"`
	// Queries are checked against the stored data; every value is read as
	// text (NULL as null).
	Queries []struct {
		SQL  string  `json:"sql"`
		Want [][]any `json:"want"`
	} `json:"queries"`
	// MaxColumns overrides the column cap for this scenario.
	MaxColumns int `json:"max_columns"`
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			t.Parallel()
			runScenario(t, f)
		})
	}
}

func runScenario(t *testing.T, file string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var sc scenario
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	e := newEnv(t, func(c *envConfig) { c.batcher.MaxColumns = sc.MaxColumns })
	id, key := e.tenant("scenario")
	for i, r := range sc.Requests {
		body := []byte(r.Body)
		if len(body) == 0 {
			body = r.BodyJSON
		}
		hdr := []string{"X-API-KEY", key}
		if r.Gzip {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = b.Bytes()
			hdr = append(hdr, "Content-Encoding", "gzip")
		}
		resp := e.do("POST", "/api/data/insert/"+r.Table+"?wait=true", body, hdr...)
		want := r.Status
		if want == 0 {
			want = 200
		}
		if resp.status != want {
			t.Fatalf("request %d: status %d, want %d: %s", i, resp.status, want, resp.body)
		}
		if want != 200 {
			continue
		}
		var ir ingest.InsertResponse
		if err := json.Unmarshal(resp.body, &ir); err != nil {
			t.Fatalf("request %d: %v: %s", i, err, resp.body)
		}
		if ir.Accepted != r.Accepted || ir.Rejected != r.Rejected {
			t.Fatalf("request %d: accepted %d rejected %d, want %d and %d: %s", i, ir.Accepted, ir.Rejected, r.Accepted, r.Rejected, resp.body)
		}
	}
	e.stop()
	db := e.openDB(id)
	for table, want := range sc.Columns {
		if got := columnsOf(t, db, table); !reflect.DeepEqual(got, want) {
			t.Errorf("columns of %s:\n got %v\nwant %v", table, got, want)
		}
	}
	for _, q := range sc.Queries {
		got := queryText(t, db, q.SQL)
		want := normalize(q.Want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", q.SQL, got, want)
		}
	}
}

func columnsOf(t *testing.T, db *sql.DB, table string) [][2]string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var c [2]string
		if err := rows.Scan(&c[0], &c[1]); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// queryText runs q and returns every value as text, NULL as nil.
func queryText(t *testing.T, db *sql.DB, q string) [][]any {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		row := make([]any, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// normalize turns expected JSON values into text as queryText returns them.
func normalize(want [][]any) [][]any {
	out := make([][]any, len(want))
	for i, row := range want {
		out[i] = make([]any, len(row))
		for j, v := range row {
			switch v := v.(type) {
			case nil:
			case string:
				out[i][j] = v
			default:
				b, _ := json.Marshal(v)
				out[i][j] = string(b)
			}
		}
	}
	return out
}
