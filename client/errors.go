package client

import (
	"fmt"
	"net/http"
	"strings"
)

// Error is an error answer of the API: its status and the seed's error body
// {"error": {"code", "message", "details"}}.
type Error struct {
	Status    int            // HTTP status
	Code      string         // the API's code: not_found, conflict, ...
	Message   string         // the API's message
	Details   map[string]any // the API's details (details.field names a bad field)
	RequestID string         // X-Request-ID of the answer, for the server's log
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// Is matches the sentinel of the error's code, so errors.Is(err,
// client.ErrNotFound) holds for any 404 of the API.
func (e *Error) Is(target error) bool {
	c, ok := target.(codeError)
	return ok && string(c) == e.Code
}

// codeError is a sentinel for one of the API's error codes.
type codeError string

func (c codeError) Error() string { return "terratask API: " + strings.ReplaceAll(string(c), "_", " ") }

// Sentinels, one per error code of the API; errors.Is(err, ErrConflict)
// tells a conflict from other errors.
var (
	ErrBadRequest           error = codeError("bad_request")
	ErrUnauthorized         error = codeError("unauthorized")
	ErrForbidden            error = codeError("forbidden")
	ErrNotFound             error = codeError("not_found")
	ErrMethodNotAllowed     error = codeError("method_not_allowed")
	ErrConflict             error = codeError("conflict")
	ErrPayloadTooLarge      error = codeError("payload_too_large")
	ErrUnsupportedMediaType error = codeError("unsupported_media_type")
	ErrInternal             error = codeError("internal")
	ErrUnavailable          error = codeError("unavailable")
	// ErrLocked is a state lock held by someone else (HTTP 423); the
	// holder's lock info is in Details["lock"].
	ErrLocked error = codeError("locked")
)

// codeOfStatus names the code of an answer whose body is not the API's
// error body (a proxy's page, a 423 with Terraform's lock info).
func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusLocked:
		return "locked"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "unavailable"
	default:
		return "internal"
	}
}
