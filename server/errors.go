package server

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Error codes of the API's error body.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeTooLarge         = "payload_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable"
)

// apiError is the seed's error body.
type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// fail aborts the request with the seed's error body.
func fail(c *gin.Context, status int, code, msg string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	c.AbortWithStatusJSON(status, gin.H{"error": apiError{Code: code, Message: msg, Details: details}})
}

func badRequest(c *gin.Context, field, msg string) {
	fail(c, http.StatusBadRequest, codeBadRequest, msg, map[string]any{"field": field})
}

func notFound(c *gin.Context, id string) {
	fail(c, http.StatusNotFound, codeNotFound, "Task not found", map[string]any{"taskId": id})
}

func internal(c *gin.Context) {
	fail(c, http.StatusInternalServerError, codeInternal, "internal error; see the server log for request "+c.GetString(ctxRequestID), nil)
}
