package events

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/terratask/terratask/task"
)

// AttemptTimeout bounds one delivery attempt: connecting, sending and
// reading the answer.
const AttemptTimeout = 10 * time.Second

// Sender delivers events over HTTP: a POST of the event's JSON, signed,
// with a 10-second timeout, never following a redirect, through no proxy,
// and connected by its Guard's dialer only (public addresses, or those the
// guard's allow list names).
type Sender struct {
	client *http.Client
}

// NewSender returns a Sender that connects through g's dialer (nil: a
// Guard that reaches public addresses only). timeout 0 means
// AttemptTimeout.
func NewSender(timeout time.Duration, g *Guard) *Sender {
	if timeout <= 0 {
		timeout = AttemptTimeout
	}
	if g == nil {
		g = &Guard{}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	// A proxy would resolve and connect itself, past the guard.
	tr.Proxy = nil
	tr.DialContext = g.DialContext
	return &Sender{client: &http.Client{
		Timeout:   timeout,
		Transport: tr,
		// A redirect is an answer like any other non-2xx: the receiver
		// must be reached at the URL it was registered with.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Message is one delivery: where, with which secret, and what.
type Message struct {
	URL    string
	Secret []byte
	Type   task.EventType
	// ID is the event's ID (X-Terratask-Delivery).
	ID   string
	Body []byte
}

// Outcome is the result of one attempt.
type Outcome struct {
	// StatusCode is the receiver's; 0 when none came.
	StatusCode int
	Latency    time.Duration
	// Err is nil for a 2xx answer. Its message holds no secret, no URL and
	// nothing of the receiver's answer but its status code: not its body,
	// not its reason phrase, not what its TLS certificate names.
	Err error
}

// Delivered reports whether the receiver took the event.
func (o Outcome) Delivered() bool { return o.Err == nil }

// Send makes one attempt to deliver m.
func (s *Sender) Send(ctx context.Context, m Message) Outcome {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Outcome{Err: errors.New("invalid URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "terratask-webhook/1")
	req.Header.Set(HeaderEvent, string(m.Type))
	req.Header.Set(HeaderDelivery, m.ID)
	req.Header.Set(HeaderSignature, Sign(m.Secret, m.Body, time.Now()))
	resp, err := s.client.Do(req)
	if err != nil {
		return Outcome{Latency: time.Since(start), Err: transportError(err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	o := Outcome{StatusCode: resp.StatusCode, Latency: time.Since(start)}
	// The status code only: the reason phrase is the receiver's text.
	status := strconv.Itoa(resp.StatusCode)
	if t := http.StatusText(resp.StatusCode); t != "" {
		status += " " + t
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		o.Err = fmt.Errorf("receiver answered %s (redirects are not followed)", status)
	default:
		o.Err = fmt.Errorf("receiver answered %s", status)
	}
	return o
}

// transportError describes a failed request without the URL (which
// url.Error would repeat), and without what the far end sent (a TLS
// certificate's names, a protocol error's bytes).
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var refused *RefusedError
	var lookup *LookupError
	var ne net.Error
	var oe *net.OpError
	var certInvalid x509.CertificateInvalidError
	var certHost x509.HostnameError
	var certAuthority x509.UnknownAuthorityError
	var tlsRecord tls.RecordHeaderError
	switch {
	case errors.As(err, &refused):
		return fmt.Errorf("refused: %s", refused.Error())
	case errors.As(err, &lookup):
		return lookup
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return errors.New("no answer within the attempt's timeout")
	case errors.Is(err, context.Canceled):
		return errors.New("attempt cancelled")
	case errors.As(err, &certHost):
		return errors.New("TLS failed: the receiver's certificate is not valid for the URL's host")
	case errors.As(err, &certAuthority):
		return errors.New("TLS failed: the receiver's certificate is not signed by a trusted authority")
	case errors.As(err, &certInvalid):
		return errors.New("TLS failed: the receiver's certificate is not valid")
	case errors.As(err, &tlsRecord):
		return errors.New("TLS failed: the receiver does not speak TLS")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection failed: connection refused")
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("connection failed: the receiver closed the connection")
	case errors.As(err, &oe):
		return fmt.Errorf("connection failed: %s", oe.Op)
	}
	return errors.New("request failed")
}
