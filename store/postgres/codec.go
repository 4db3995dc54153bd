package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// txt returns s as PostgreSQL text can hold it: each NUL byte and each
// invalid UTF-8 sequence becomes U+FFFD. Valid strings, nearly all, are
// returned as they are.
func txt(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// dbTime is t as stored: truncated to the microsecond (timestamptz's
// precision; pgx would truncate toward zero, not down, before 1970).
func dbTime(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// dbTimePtr is dbTime of *t, or nil (NULL).
func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

// goTime returns a scanned nullable timestamp in UTC, nil for NULL.
func goTime(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time.UTC()
	return &v
}

// dbJSON encodes v as JSON text, or nil (NULL) when isNil.
func dbJSON(v any, isNil bool) ([]byte, error) {
	if isNil {
		return nil, nil
	}
	return json.Marshal(v)
}

// metadataJSON encodes a metadata map, NULL for nil.
func metadataJSON(m map[string]any) ([]byte, error) {
	b, err := dbJSON(m, m == nil)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return b, nil
}

// goMetadata decodes a stored metadata map; NULL is nil.
func goMetadata(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	return m, nil
}
