package oidc

import (
	"encoding/json"
	"net/http"

	"go.uber.org/zap"
)

// Paths of the discovery document and the JWKS, below the issuer URL.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks.json"
)

// Cache-Control of the two documents. The discovery document only changes
// with the issuer URL; the JWKS changes at each rotation, and relying
// parties caching it for 5 minutes see a new key long before it signs
// (PublishAhead, 12h by default).
const (
	discoveryCacheControl = "public, max-age=3600"
	jwksCacheControl      = "public, max-age=300"
)

// Discovery is the OpenID Provider metadata terratask publishes: what AWS
// IAM, GCP workload identity federation and Microsoft Entra read to find
// the JWKS and the algorithm (there is no authorization endpoint: tokens
// are only minted for steps).
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
	ScopesSupported                  []string `json:"scopes_supported"`
}

// Discovery returns the issuer's discovery document.
func (i *Issuer) Discovery() Discovery {
	return Discovery{
		Issuer:                           i.url,
		JWKSURI:                          i.url + JWKSPath,
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{Alg},
		ClaimsSupported:                  ClaimsSupported,
		ScopesSupported:                  []string{"openid"},
	}
}

// Handler serves GET (and HEAD) of the discovery document and the JWKS at
// the issuer URL's path + DiscoveryPath and + JWKSPath, both public (no
// authentication: relying parties fetch them anonymously). Mount it where
// those paths reach it (at "/" of the issuer's host, or at its path). The
// JWKS holds public keys only, each with its kid, "use": "sig" and "alg":
// "RS256". When the keys cannot be read (nor those read before used), the
// JWKS is a 503 that no cache keeps.
func (i *Issuer) Handler() http.Handler {
	discovery, err := json.Marshal(i.Discovery())
	if err != nil {
		panic("oidc: encoding the discovery document: " + err.Error())
	}
	discoveryPath, jwksPath := i.prefix+DiscoveryPath, i.prefix+JWKSPath
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != discoveryPath && r.URL.Path != jwksPath {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, cacheControl := discovery, discoveryCacheControl
		if r.URL.Path == jwksPath {
			set, err := i.JWKS(r.Context())
			if err == nil {
				body, err = json.Marshal(set)
			}
			if err != nil {
				i.o.log.Warn("oidc: serving the JWKS", zap.Error(err))
				w.Header().Set("Cache-Control", "no-store")
				http.Error(w, "signing keys unavailable", http.StatusServiceUnavailable)
				return
			}
			cacheControl = jwksCacheControl
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", cacheControl)
		_, _ = w.Write(body)
	})
}
