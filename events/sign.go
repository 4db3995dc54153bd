package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	// HeaderEvent is the event's type (task.completed, ping, ...).
	HeaderEvent = "X-Terratask-Event"
	// HeaderDelivery is the event's ID: the same in every attempt to
	// deliver it, so receivers deduplicate on it.
	HeaderDelivery = "X-Terratask-Delivery"
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" keyed with the secret>".
	HeaderSignature = "X-Terratask-Signature"
)

// DefaultTolerance is how old a signature Verify accepts by default: older
// ones are refused, so a captured delivery cannot be replayed later.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("no valid X-Terratask-Signature header")
	ErrBadSignature = errors.New("signature does not match")
	ErrExpired      = errors.New("signature timestamp is outside the tolerance")
)

// Sign returns the X-Terratask-Signature value of body at time at.
func Sign(secret, body []byte, at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks an X-Terratask-Signature header against the raw request
// body: one of its v1 signatures must be the HMAC-SHA256 of "<t>.<body>"
// keyed with secret, and t must be within tolerance of now (0 means
// DefaultTolerance). It compares in constant time. The body must be the
// bytes as received, before any JSON decoding.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return ErrExpired
	}
	return nil
}

// VerifyRequest reads r's body (at most maxBytes; 0 means 1 MiB) and
// verifies its signature with DefaultTolerance. It returns the body, which
// the caller may then decode as an api.Event.
func VerifyRequest(r *http.Request, secret []byte, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > maxBytes {
		return nil, errors.New("body too large")
	}
	if err := Verify(secret, r.Header.Get(HeaderSignature), body, time.Now(), 0); err != nil {
		return nil, err
	}
	return body, nil
}
