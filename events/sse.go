package events

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// KeepAlive is how often a stream with nothing to send writes a comment,
// so proxies and clients see the connection is alive.
const KeepAlive = 15 * time.Second

// SSEWriter writes server-sent events (text/event-stream).
type SSEWriter struct {
	w     io.Writer
	flush func()
	buf   bytes.Buffer
}

// NewSSEWriter writes to w and calls flush after each event.
func NewSSEWriter(w io.Writer, flush func()) *SSEWriter {
	if flush == nil {
		flush = func() {}
	}
	return &SSEWriter{w: w, flush: flush}
}

// Event writes one event: its name, its ID (the client's Last-Event-ID
// when it reconnects; "" for none) and its data (JSON: one line).
func (s *SSEWriter) Event(name, id string, data []byte) error {
	s.buf.Reset()
	if name != "" {
		fmt.Fprintf(&s.buf, "event: %s\n", name)
	}
	if id != "" {
		fmt.Fprintf(&s.buf, "id: %s\n", id)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		s.buf.WriteString("data: ")
		s.buf.Write(line)
		s.buf.WriteByte('\n')
	}
	s.buf.WriteByte('\n')
	return s.write()
}

// Comment writes a comment line (a keep-alive).
func (s *SSEWriter) Comment(text string) error {
	s.buf.Reset()
	s.buf.WriteString(": " + strings.ReplaceAll(text, "\n", " ") + "\n\n")
	return s.write()
}

// Retry tells the client how long to wait before it reconnects.
func (s *SSEWriter) Retry(ms int) error {
	s.buf.Reset()
	fmt.Fprintf(&s.buf, "retry: %d\n\n", ms)
	return s.write()
}

func (s *SSEWriter) write() error {
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return err
	}
	s.flush()
	return nil
}

// SSEEvent is an event read by an SSEReader.
type SSEEvent struct {
	Name string // "message" when the event named none
	ID   string // the event's id field ("" when it had none)
	Data []byte
}

// SSEReader reads a text/event-stream, for clients and tests.
type SSEReader struct {
	sc     *bufio.Scanner
	lastID string
	// Comments counts the comment lines (keep-alives) read so far.
	Comments int
}

// NewSSEReader reads from r.
func NewSSEReader(r io.Reader) *SSEReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	return &SSEReader{sc: sc}
}

// LastID is the last event ID seen: what a client sends as Last-Event-ID.
func (r *SSEReader) LastID() string { return r.lastID }

// Next returns the next event; comments are skipped. It returns io.EOF at
// the end of the stream.
func (r *SSEReader) Next() (SSEEvent, error) {
	var (
		ev      SSEEvent
		data    [][]byte
		hasData bool
		hasID   bool
	)
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" {
			if !hasData && ev.Name == "" && !hasID {
				continue
			}
			if hasID {
				r.lastID = ev.ID
			}
			if ev.Name == "" {
				ev.Name = "message"
			}
			ev.Data = bytes.Join(data, []byte("\n"))
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			r.Comments++
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Name = value
		case "id":
			ev.ID, hasID = value, true
		case "data":
			data = append(data, []byte(value))
			hasData = true
		}
	}
	if err := r.sc.Err(); err != nil {
		return SSEEvent{}, err
	}
	return SSEEvent{}, io.EOF
}
