package server

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIPath serves the OpenAPI 3 document of the whole API.
const openAPIPath = "/api/v1/openapi.json"

// openAPI is the document, kept true by TestOpenAPICoversRoutes (every route
// and view) and by the end-to-end test that calls every documented route.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json; charset=utf-8", openAPI)
}

// OpenAPI returns the API's OpenAPI 3 document (a copy): package client's
// tests check that every documented operation has a client method.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }
