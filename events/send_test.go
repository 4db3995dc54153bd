package events

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/terratask/terratask/task"
)

// TestSenderPinnedDialer: deliveries go through the guard's dialer: a
// listed loopback receiver gets them, through the address the name was
// resolved to; an unlisted one gets nothing.
func TestSenderPinnedDialer(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Host == "" {
			w.WriteHeader(400)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	msg := func(u string) Message {
		return Message{URL: u, Secret: []byte("x"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)}
	}
	dns := newFakeDNS(map[string][]string{"receiver.test": {"127.0.0.1"}})

	// Not listed: refused, the receiver sees nothing.
	out := NewSender(0, &Guard{Resolve: dns.resolve}).Send(context.Background(), msg(srv.URL))
	if out.Delivered() || out.StatusCode != 0 || !strings.HasPrefix(out.Err.Error(), "refused: the host is a loopback address") || hits.Load() != 0 {
		t.Fatalf("default guard: %+v (hits %d)", out, hits.Load())
	}
	out = NewSender(0, nil).Send(context.Background(), msg(srv.URL))
	if out.Delivered() || !strings.Contains(out.Err.Error(), "--webhook-allow") || hits.Load() != 0 {
		t.Fatalf("nil guard: %+v (hits %d)", out, hits.Load())
	}

	// Listed by name: the name resolves (fake DNS) and the dial goes to
	// the resolved address.
	s := NewSender(0, &Guard{Allow: mustAllow(t, "receiver.test"), Resolve: dns.resolve})
	if out := s.Send(context.Background(), msg("http://receiver.test:"+port+"/hook")); !out.Delivered() || hits.Load() != 1 {
		t.Fatalf("listed name: %+v (hits %d)", out, hits.Load())
	}
	// Listed by IP.
	s = NewSender(0, &Guard{Allow: mustAllow(t, "127.0.0.1:"+port)})
	if out := s.Send(context.Background(), msg(srv.URL)); !out.Delivered() || hits.Load() != 2 {
		t.Fatalf("listed IP: %+v (hits %d)", out, hits.Load())
	}
	// The same IP at another port is not listed.
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(100) }))
	defer other.Close()
	if out := s.Send(context.Background(), msg(other.URL)); out.Delivered() || hits.Load() != 2 {
		t.Fatalf("another port: %+v (hits %d)", out, hits.Load())
	}
}

// TestDNSRebindingIsRefused: a name that resolves to a public address when
// the webhook is checked, and to loopback when the delivery dials, is
// refused at the dial; the loopback receiver gets nothing.
func TestDNSRebindingIsRefused(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for name, second := range map[string][]string{
		"rebind.test":      {"127.0.0.1"},
		"rebind-both.test": {publicIP.String(), "127.0.0.1"},
		"rebind-v6.test":   {"::ffff:127.0.0.1"},
	} {
		dns := newFakeDNS(map[string][]string{name: {publicIP.String()}}).then(name, second...)
		g := &Guard{Resolve: dns.resolve}
		u, err := CheckURL("http://" + name + ":" + port + "/hook")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Check(context.Background(), u); err != nil {
			t.Fatalf("%s: the check at registration: %v", name, err)
		}
		out := NewSender(2*time.Second, g).Send(context.Background(), Message{URL: u.String(), Secret: []byte("x"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)})
		var refused *RefusedError
		if out.Delivered() || out.StatusCode != 0 || !strings.Contains(out.Err.Error(), "refused: the host resolves to a loopback address") {
			t.Errorf("%s: outcome %+v", name, out)
		}
		if _, err := g.DialContext(context.Background(), "tcp", net.JoinHostPort(name, port)); !errors.As(err, &refused) {
			t.Errorf("%s: DialContext = %v, want a refusal", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
}

// TestSenderNeverReportsTheAnswer: a receiver's body and reason phrase
// never reach the outcome; its status code does.
func TestSenderNeverReportsTheAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				_, _ = req.Body.Read(make([]byte, 1<<10))
				fmt.Fprintf(c, "HTTP/1.1 500 SECRET-REASON\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nSECRET-BODY")
			}()
		}
	}()
	out := localSender(t, 0).Send(context.Background(), Message{URL: "http://" + ln.Addr().String() + "/", Secret: []byte("x"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)})
	if out.Delivered() || out.StatusCode != 500 || out.Err.Error() != "receiver answered 500 Internal Server Error" {
		t.Fatalf("outcome %+v", out)
	}
	if s := fmt.Sprintf("%+v %v", out, out.Err); strings.Contains(s, "SECRET") {
		t.Fatalf("the outcome repeats the receiver's answer: %s", s)
	}
	// A receiver that answers garbage: nothing of it either.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = http.ReadRequest(bufio.NewReader(c))
		fmt.Fprint(c, "SECRET-GARBAGE not http at all\r\n\r\n")
	}()
	out = localSender(t, 0).Send(context.Background(), Message{URL: "http://" + ln2.Addr().String() + "/", Secret: []byte("x"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)})
	if out.Delivered() || strings.Contains(out.Err.Error(), "SECRET") {
		t.Fatalf("garbage answer: %+v", out)
	}
}
