package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// dbTime is t as stored: microseconds since the Unix epoch (UTC).
func dbTime(t time.Time) int64 { return t.UnixMicro() }

// dbTimePtr is dbTime of *t, or NULL for nil.
func dbTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// goTime converts a stored timestamp back, in UTC.
func goTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

// microseconds is a stored duration.
func microseconds(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

// goTimePtr converts a nullable stored timestamp back.
func goTimePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := goTime(v.Int64)
	return &t
}

// dbJSON encodes v as JSON text, or NULL when v is nil (a nil map or pointer).
func dbJSON[T any](v T, isNil bool) (any, error) {
	if isNil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// metadataJSON encodes a metadata map, NULL for nil.
func metadataJSON(m map[string]any) (any, error) {
	v, err := dbJSON(m, m == nil)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return v, nil
}

// goMetadata decodes a stored metadata map; NULL is nil.
func goMetadata(v sql.NullString) (map[string]any, error) {
	if !v.Valid {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(v.String), &m); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	return m, nil
}
