package main

import (
	"github.com/spf13/pflag"

	"github.com/terratask/terratask/internal/app"
	"github.com/terratask/terratask/server"
)

// httpFlags are the flags of dev and server that harden the API's HTTP
// server (README, Hardening).
func httpFlags(fs *pflag.FlagSet, o *app.HTTPOptions) {
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", "", "PEM certificate (chain) to serve the API and /mcp over TLS (HTTPS, HTTP/2), with\n--tls-key-file; both or neither. Changed files are loaded again within a minute")
	fs.StringVar(&o.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.DurationVar(&o.ReadTimeout, "http-read-timeout", app.DefaultReadTimeout, "how long a client may take to send a request's header and body; a slower one loses\nits connection (state uploads get 2m)")
	fs.DurationVar(&o.WriteTimeout, "http-write-timeout", server.DefaultWriteTimeout, "how long an answer may take, from the request's start; streams (follow, /mcp) have\nno deadline while idle, and each of their writes gets this long")
	fs.DurationVar(&o.IdleTimeout, "http-idle-timeout", app.DefaultIdleTimeout, "how long an idle keep-alive connection stays open")
	fs.IntVar(&o.MaxStreamsPerKey, "max-streams-per-key", server.DefaultMaxStreamsPerKey, "streams (log and event follows, /mcp requests) one API key may have open on this\nprocess at once; one more is a 429")
}
