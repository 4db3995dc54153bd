package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// RouteUnmatched is the route label of requests no route matched (404s and
// 405s), so scanners probing random paths add no series.
const RouteUnmatched = "unmatched"

var httpMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// GinMiddleware counts and times every request by its route template (gin's
// FullPath, such as /api/v1/tasks/:taskId), method and status code. Put it
// first, so requests that other middleware answers (401s) count too.
func GinMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = RouteUnmatched
		}
		method := c.Request.Method
		if !httpMethods[method] {
			method = "OTHER"
		}
		code := c.Writer.Status()
		if code < 100 || code > 599 {
			code = 0
		}
		labels := []string{route, method, strconv.Itoa(code)}
		httpRequests.WithLabelValues(labels...).Inc()
		httpDuration.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
	}
}
