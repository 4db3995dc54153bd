package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

// fieldError is a 400 naming the offending field.
type fieldError struct {
	Field   string
	Message string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Message }

func errField(field, format string, args ...any) *fieldError {
	return &fieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

func requiredString(raw map[string]json.RawMessage, k string, max int) (string, error) {
	v, ok := raw[k]
	if !ok || isNull(v) {
		return "", errField(k, "is required")
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", errField(k, "must be a string")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errField(k, "must not be empty")
	}
	if len(s) > max {
		return "", errField(k, "must be at most %d bytes", max)
	}
	return s, nil
}

func optionalString(raw map[string]json.RawMessage, k string, max int) (string, error) {
	if v, ok := raw[k]; !ok || isNull(v) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw[k], &s) != nil {
		return "", errField(k, "must be a string")
	}
	if len(s) > max {
		return "", errField(k, "must be at most %d bytes", max)
	}
	return s, nil
}

func requiredID(raw map[string]json.RawMessage, k string) (string, error) {
	s, err := requiredString(raw, k, maxIDLen)
	if err != nil {
		return "", err
	}
	if !idPattern.MatchString(s) {
		return "", errField(k, "must be letters, digits and . _ : @ -, starting with a letter or digit")
	}
	return s, nil
}

// validID reports whether s is a valid agent or runner ID (for path params).
func validID(s string) bool { return len(s) <= maxIDLen && idPattern.MatchString(s) }

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// decodeStrict decodes exactly one JSON value.
func decodeStrict(b []byte, v any) error {
	return decodeOne(b, v, false)
}

// decodeKnown is decodeStrict into a struct that names every field the
// body may have: an unknown field is an error.
func decodeKnown(b []byte, v any) error {
	return decodeOne(b, v, true)
}

func decodeOne(b []byte, v any, known bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if known {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// jsonProblem describes a decode error without echoing input.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("malformed JSON at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("wrong type at byte %d", e.Offset)
	}
	if err.Error() == "EOF" {
		return "empty body"
	}
	return "malformed JSON"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readJSONBody checks the content type and reads a body of at most
// MaxBodyBytes; it writes the 4xx itself and reports false.
func (s *Server) readJSONBody(c *gin.Context) ([]byte, bool) {
	if !requireJSON(c) {
		return nil, false
	}
	return readBody(c, s.opts.MaxBodyBytes)
}

// requireJSON answers a request whose body is not application/json with a
// 415 and reports false.
func requireJSON(c *gin.Context) bool {
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
		fail(c, http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json",
			map[string]any{detailHeader: "Content-Type"})
		return false
	}
	return true
}

// readBody reads a body of at most limit bytes; it writes the 4xx itself
// and reports false.
func readBody(c *gin.Context, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body exceeds %d bytes", limit),
				map[string]any{"limit_bytes": limit})
			return nil, false
		}
		badField(c, "body", "could not read the request body")
		return nil, false
	}
	return body, true
}
