package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/terratask/terratask/api"
)

// Error codes of the API's error body. Every failure the API answers carries
// one of them:
//
//	bad_request            400  invalid body, query parameter, path parameter or header
//	unauthorized           401  missing, malformed or unknown API key
//	forbidden              403  the key's role or agent binding forbids the action
//	not_found              404  no such task (or one of another org or agent), or no such route
//	method_not_allowed     405  the route exists with other methods (see the Allow header)
//	conflict               409  the task's state forbids the action, or an Idempotency-Key reused with another body
//	policy_invalid         400  a policy that does not compile (details.problems: policy, line, column, message)
//	payload_too_large      413  the body exceeds the server's limit
//	unsupported_media_type 415  a body that is not application/json
//	too_many_requests      429  too many failed authentications from the address (see Retry-After), or too many open streams of the key
//	internal               500  an unexpected error; details are in the server log only
//	unavailable            503  Temporal or the store cannot be reached
const (
	codeBadRequest       = "bad_request"
	codePolicyInvalid    = "policy_invalid"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeTooLarge         = "payload_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeTooManyRequests  = "too_many_requests"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable"
)

// errorCodes lists every code with its HTTP status (tests and the OpenAPI
// document check against it).
var errorCodes = map[string]int{
	codeBadRequest:       http.StatusBadRequest,
	codePolicyInvalid:    http.StatusBadRequest,
	codeUnauthorized:     http.StatusUnauthorized,
	codeForbidden:        http.StatusForbidden,
	codeNotFound:         http.StatusNotFound,
	codeMethodNotAllowed: http.StatusMethodNotAllowed,
	codeConflict:         http.StatusConflict,
	codeTooLarge:         http.StatusRequestEntityTooLarge,
	codeUnsupportedMedia: http.StatusUnsupportedMediaType,
	codeTooManyRequests:  http.StatusTooManyRequests,
	codeInternal:         http.StatusInternalServerError,
	codeUnavailable:      http.StatusServiceUnavailable,
}

// Keys of an error's details that name what was wrong with a request. One
// convention everywhere: a JSON body field is "field" (a dotted path such as
// "parameters.timeout", or "body" for the body as a whole), a query or path
// parameter is "parameter", a header is "header".
const (
	detailField     = "field"
	detailParameter = "parameter"
	detailHeader    = "header"
)

// fail aborts the request with the seed's error body.
func fail(c *gin.Context, status int, code, msg string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	c.AbortWithStatusJSON(status, api.ErrorBody{Error: api.Error{Code: code, Message: msg, Details: details}})
}

// badField is a 400 naming a field of the JSON body.
func badField(c *gin.Context, field, msg string) {
	fail(c, http.StatusBadRequest, codeBadRequest, msg, map[string]any{detailField: field})
}

// badParameter is a 400 naming a query or path parameter.
func badParameter(c *gin.Context, param, msg string) {
	fail(c, http.StatusBadRequest, codeBadRequest, msg, map[string]any{detailParameter: param})
}

// badHeader is a 400 naming a request header.
func badHeader(c *gin.Context, header, msg string) {
	fail(c, http.StatusBadRequest, codeBadRequest, msg, map[string]any{detailHeader: header})
}

func notFound(c *gin.Context, id string) {
	fail(c, http.StatusNotFound, codeNotFound, "Task not found", map[string]any{"taskId": id})
}

// internal answers 500 without any detail of the failure: that goes to the
// server log under the request ID the message names.
func internal(c *gin.Context) {
	fail(c, http.StatusInternalServerError, codeInternal, "internal error; see the server log for request "+c.GetString(ctxRequestID), nil)
}

// unavailable answers 503 when Temporal or the store cannot be reached.
func unavailable(c *gin.Context, what string) {
	fail(c, http.StatusServiceUnavailable, codeUnavailable, "could not "+what+": the workflow engine is unavailable", nil)
}
