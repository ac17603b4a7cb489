package batcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"duckgate/schema"
)

// maxDryRunValues bounds the quarantined values a dry run lists; it counts
// them all.
const maxDryRunValues = 100

// DryRunResult is what an insert of some rows would change in its table,
// planned against the table as committed now, with its rules.
type DryRunResult struct {
	// TableExists is false when the insert would create the table.
	TableExists bool `json:"table_exists"`
	// NewColumns would be added (all of them when the table is created).
	NewColumns []DryRunColumn `json:"new_columns"`
	// Widened columns would change type, each with the first value that
	// makes it.
	Widened []DryRunWidening `json:"widened"`
	// Overflow lists the keys whose values would go to the _overflow
	// column (beyond the column cap, not a usable name, a frozen table).
	Overflow []string `json:"overflow"`
	// Quarantined counts the values that would go to the quarantine
	// (they do not fit a pinned column); QuarantinedValues lists the
	// first 100.
	Quarantined       int            `json:"quarantined"`
	QuarantinedValues []DryRunMisfit `json:"quarantined_values"`
}

// DryRunColumn is a column a dry run would add.
type DryRunColumn struct {
	Column string `json:"column"`
	Type   string `json:"type"`
}

// DryRunWidening is a column a dry run would widen.
type DryRunWidening struct {
	Column string          `json:"column"`
	From   string          `json:"from"`
	To     string          `json:"to"`
	Value  json.RawMessage `json:"value"`
}

// DryRunMisfit is a value a dry run would quarantine.
type DryRunMisfit struct {
	// Row is the 1-based position of its row among the rows accepted.
	Row          int             `json:"row"`
	Column       string          `json:"column"`
	Value        json.RawMessage `json:"value"`
	ExpectedType string          `json:"expected_type"`
}

// DryRun plans the insert of rows into table as the tenant's writer would
// flush them, alone, now, and stores nothing (it does not even create the
// tenant's database file). Rows buffered and not yet committed are not
// taken into account.
func (b *Batcher) DryRun(ctx context.Context, tenant, table string, rows *Rows) (DryRunResult, error) {
	res := DryRunResult{NewColumns: []DryRunColumn{}, Widened: []DryRunWidening{}, Overflow: []string{}, QuarantinedValues: []DryRunMisfit{}}
	items := []*pending{{rows: rows}}
	seen, keyIdx := mergeKeys(items)
	if rows.Dups {
		seen = append(seen, schema.Seen{Key: schema.OverflowColumn, Kinds: schema.KindJSON})
	}
	tbl := schema.NewTable(nil)
	if _, err := os.Stat(b.pool.Path(tenant)); !errors.Is(err, os.ErrNotExist) {
		h, err := b.pool.Acquire(ctx, tenant)
		if err != nil {
			return res, err
		}
		defer h.Release()
		if tbl, res.TableExists, err = readSchema(ctx, h.DB, table); err != nil {
			return res, fmt.Errorf("dry run on %s: %w", table, err)
		}
		if err := markBigInts(ctx, h.DB, table, tbl, seen); err != nil {
			return res, fmt.Errorf("dry run on %s: %w", table, err)
		}
	}
	changes, overflow := tbl.Plan(seen, b.cfg.MaxColumns)
	if tbl.Len() == 0 {
		changes, _ = tbl.Plan([]schema.Seen{{Key: schema.OverflowColumn, Kinds: schema.KindJSON}}, b.cfg.MaxColumns)
	}
	for _, c := range changes {
		switch c.Op {
		case schema.OpAddColumn:
			res.NewColumns = append(res.NewColumns, DryRunColumn{Column: c.Column, Type: c.To.String()})
		case schema.OpAlterType:
			res.Widened = append(res.Widened, DryRunWidening{Column: c.Column, From: c.From.String(), To: c.To.String(),
				Value: json.RawMessage(firstWidening(rows, c.Column, c.From))})
		}
	}
	for _, i := range overflow {
		res.Overflow = append(res.Overflow, seen[i].Key)
	}

	accept := misfitKinds(tbl, seen)
	if accept == nil {
		return res, nil
	}
	local := keyIdx[0]
	cols := tbl.Columns()
	set := make(map[int]bool)
	start := uint32(0)
	for ri, end := range rows.Ends {
		clear(set)
		for ci := start; ci < end; ci++ {
			c := &rows.Cells[ci]
			col, ok := tbl.Lookup(rows.Keys[c.Key])
			if !ok || set[col] {
				continue
			}
			if a := accept[local[c.Key]]; a != 0 && c.Kind&a == 0 {
				res.Quarantined++
				if len(res.QuarantinedValues) < maxDryRunValues {
					res.QuarantinedValues = append(res.QuarantinedValues, DryRunMisfit{Row: ri + 1, Column: cols[col].Name,
						Value: json.RawMessage(jsonText(c)), ExpectedType: cols[col].Type.String()})
				}
				continue
			}
			set[col] = true
		}
		start = end
	}
	return res, nil
}

// firstWidening is the first value of column, as JSON, that a column of
// type from cannot hold.
func firstWidening(rows *Rows, column string, from schema.Type) string {
	f := schema.FoldName(column)
	for i := range rows.Cells {
		c := &rows.Cells[i]
		if schema.FoldName(rows.Keys[c.Key]) == f && schema.Evolve(from, c.Kind) != from {
			return jsonText(c)
		}
	}
	return "null"
}
