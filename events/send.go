package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/terratask/terratask/task"
)

// AttemptTimeout bounds one delivery attempt: connecting, sending and
// reading the answer.
const AttemptTimeout = 10 * time.Second

// maxAnswer is how much of a receiver's answer a failed attempt keeps (for
// the ping's error message only; the delivery log keeps none of it).
const maxAnswer = 512

// Sender delivers events over HTTP: a POST of the event's JSON, signed,
// with a 10-second timeout, never following a redirect.
type Sender struct {
	client *http.Client
}

// NewSender returns a Sender. timeout 0 means AttemptTimeout.
func NewSender(timeout time.Duration) *Sender {
	if timeout <= 0 {
		timeout = AttemptTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
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
	// none of the receiver's body.
	Err error
	// Answer is the start of the receiver's body (at most 512 bytes, valid
	// UTF-8), for the creator of a webhook whose ping failed.
	Answer string
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
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	o := Outcome{StatusCode: resp.StatusCode, Latency: time.Since(start), Answer: strings.ToValidUTF8(string(answer), "\uFFFD")}
	if !utf8.ValidString(o.Answer) {
		o.Answer = ""
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		o.Err = fmt.Errorf("receiver answered %s (redirects are not followed)", resp.Status)
	default:
		o.Err = fmt.Errorf("receiver answered %s", resp.Status)
	}
	return o
}

// transportError describes a failed request without the URL (which
// url.Error would repeat).
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return errors.New("no answer within the attempt's timeout")
	case errors.Is(err, context.Canceled):
		return errors.New("attempt cancelled")
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("connection failed: %s %s", oe.Op, errText(oe.Err))
	}
	return fmt.Errorf("request failed: %s", errText(err))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
