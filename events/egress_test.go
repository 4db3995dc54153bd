package events

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test traffic goes to loopback only: a check that must refuse an internal
// or public address is tested by what it refuses (before any connect), and
// names resolve through fakeDNS, never a real resolver.

// publicIP is a public address the tests resolve names to; nothing ever
// connects to it.
var publicIP = netip.MustParseAddr("93.184.215.14")

// fakeDNS is a Resolver over a fixed table; names missing from it do not
// exist. Each lookup of a name may answer differently (answers[name][i] for
// the i-th lookup, the last one ever after).
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	lookups map[string]int
}

func newFakeDNS(table map[string][]string) *fakeDNS {
	d := &fakeDNS{answers: map[string][][]netip.Addr{}, lookups: map[string]int{}}
	for name, ips := range table {
		var one []netip.Addr
		for _, ip := range ips {
			one = append(one, netip.MustParseAddr(ip))
		}
		d.answers[name] = append(d.answers[name], one)
	}
	return d
}

// then adds the answer of name's next lookup.
func (d *fakeDNS) then(name string, ips ...string) *fakeDNS {
	var one []netip.Addr
	for _, ip := range ips {
		one = append(one, netip.MustParseAddr(ip))
	}
	d.answers[name] = append(d.answers[name], one)
	return d
}

func (d *fakeDNS) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := d.lookups[host]
	d.lookups[host]++
	if i >= len(a) {
		i = len(a) - 1
	}
	return a[i], nil
}

func mustAllow(t testing.TB, entries ...string) AllowList {
	t.Helper()
	l, err := ParseAllowListFlag("--webhook-allow", entries)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAddressClass(t *testing.T) {
	for ip, want := range map[string]string{
		"127.0.0.1":              classLoopback,
		"127.255.0.9":            classLoopback,
		"::1":                    classLoopback,
		"::ffff:127.0.0.1":       classLoopback,
		"10.0.0.1":               classPrivate,
		"172.16.0.1":             classPrivate,
		"172.31.255.255":         classPrivate,
		"192.168.1.1":            classPrivate,
		"fd00::1":                classPrivate,
		"fd00:ec2::254":          classPrivate, // AWS's IPv6 metadata service
		"fc00::1":                classPrivate,
		"169.254.169.254":        classLinkLocal,
		"::ffff:169.254.169.254": classLinkLocal,
		"fe80::1":                classLinkLocal,
		"fe80::1%eth0":           classLinkLocal,
		"0.0.0.0":                classUnspecified,
		"::":                     classUnspecified,
		"100.64.0.1":             classShared,
		"100.100.100.200":        classShared, // Alibaba's metadata service
		"224.0.0.1":              classMulticast,
		"ff02::1":                classMulticast,
		"255.255.255.255":        classReserved,
		"192.0.0.192":            classReserved,
		"64:ff9b::a9fe:a9fe":     classLinkLocal, // NAT64 of 169.254.169.254
		"2002:7f00:1::1":         classLoopback,  // 6to4 of 127.0.0.1
		"::127.0.0.1":            classReserved,
		"93.184.215.14":          "",
		"8.8.8.8":                "",
		"172.32.0.1":             "",
		"100.128.0.1":            "",
		"2606:4700::1111":        "",
		"64:ff9b::808:808":       "", // NAT64 of 8.8.8.8
	} {
		if got := AddressClass(netip.MustParseAddr(ip)); got != want {
			t.Errorf("AddressClass(%s) = %q, want %q", ip, got, want)
		}
	}
}

// TestGuardRefusesInternalHosts: by default a webhook URL that names, or
// resolves to, an internal address is refused, with a message that names
// the flag and not the address a name resolved to.
func TestGuardRefusesInternalHosts(t *testing.T) {
	dns := newFakeDNS(map[string][]string{
		"loopback.test":  {"127.0.0.1"},
		"metadata.test":  {"169.254.169.254"},
		"mixed.test":     {"93.184.215.14", "10.1.2.3"},
		"v6private.test": {"93.184.215.14", "fd12::7"},
		"public.test":    {"93.184.215.14"},
		"public-v6.test": {"2606:4700::1111"},
	})
	g := &Guard{Resolve: dns.resolve}
	for raw, class := range map[string]string{
		"http://127.0.0.1/":                         classLoopback,
		"http://127.0.0.1:8080/hook":                classLoopback,
		"https://169.254.169.254/latest/meta-data/": classLinkLocal,
		"http://10.0.0.1/":                          classPrivate,
		"http://192.168.0.10:9000/":                 classPrivate,
		"http://[::1]/":                             classLoopback,
		"http://[::ffff:127.0.0.1]/":                classLoopback,
		"http://[fe80::1]/":                         classLinkLocal,
		"http://0.0.0.0:8080/":                      classUnspecified,
		"http://100.100.100.200/":                   classShared,
		"http://localhost/":                         classLoopback,
		"http://LOCALHOST.:8080/":                   classLoopback,
		"http://api.localhost/":                     classLoopback,
		"http://loopback.test/":                     classLoopback,
		"http://metadata.test/computeMetadata/v1/":  classLinkLocal,
		"http://mixed.test/":                        classPrivate,
		"https://v6private.test/":                   classPrivate,
	} {
		u, err := CheckURL(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		err = g.Check(context.Background(), u)
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Class != class {
			t.Errorf("%s: Check = %v, want a refusal (%s)", raw, err, class)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "--webhook-allow") || !strings.Contains(msg, class) {
			t.Errorf("%s: message %q", raw, msg)
		}
		if u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil && (strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "10.1.2.3")) {
			t.Errorf("%s: message names the resolved address: %q", raw, msg)
		}
	}
	for _, raw := range []string{"https://public.test/hook", "http://public-v6.test:8080/", "https://93.184.215.14/", "http://[2606:4700::1111]/"} {
		u, _ := CheckURL(raw)
		if err := g.Check(context.Background(), u); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	u, _ := CheckURL("https://nowhere.test/")
	var lookup *LookupError
	if err := g.Check(context.Background(), u); !errors.As(err, &lookup) || !lookup.NotFound {
		t.Errorf("unknown name: %v", err)
	}
}

// TestGuardAllowList: what --webhook-allow lists is reached wherever it is.
func TestGuardAllowList(t *testing.T) {
	dns := newFakeDNS(map[string][]string{
		"hooks.internal":   {"10.0.0.5"},
		"two.internal":     {"10.0.0.5", "10.0.0.6"},
		"ci.corp.example":  {"192.168.3.4"},
		"loopback.test":    {"127.0.0.1"},
		"loopback-v6.test": {"::1"},
		"localhost":        {"127.0.0.1", "::1"},
	})
	g := &Guard{Allow: mustAllow(t, "127.0.0.1", "hooks.internal", "10.0.0.5:8443", "*.corp.example", "[::1]:9000"), Resolve: dns.resolve}
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:45678/":       true,  // a listed IP, any port
		"http://loopback.test:45678/":   true,  // a name resolving to a listed IP
		"http://hooks.internal/":        true,  // a listed name
		"https://10.0.0.5:8443/":        true,  // a listed IP and port
		"https://10.0.0.5/":             false, // not at that port
		"https://two.internal:8443/":    false, // 10.0.0.6 is not listed
		"https://ci.corp.example/x":     true,  // wildcard
		"http://[::1]:9000/":            true,
		"http://loopback-v6.test:9000/": true,
		"http://[::1]:9001/":            false,
		"http://127.0.0.2/":             false,
		"http://169.254.169.254/":       false,
		"http://localhost/":             false, // its addresses are not all listed
	} {
		u, err := CheckURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Check(context.Background(), u); (err == nil) != ok {
			t.Errorf("%s: Check = %v, want allowed %v", raw, err, ok)
		}
	}
	g.Allow = mustAllow(t, "localhost")
	u, _ := CheckURL("http://localhost:1234/")
	if err := g.Check(context.Background(), u); err != nil {
		t.Errorf("listed localhost: %v", err)
	}
}

// TestGuardControlRefusesBeforeConnecting: the Control func checks the
// address the socket is about to connect to. A refused address is never
// connected to: a refused dial to a live loopback listener leaves it
// without a connection.
func TestGuardControlRefusesBeforeConnecting(t *testing.T) {
	g := &Guard{}
	for _, c := range []struct {
		host, port, address string
		ok                  bool
	}{
		{"example.com", "80", "169.254.169.254:80", false},
		{"example.com", "80", "10.0.0.1:80", false},
		{"example.com", "443", "[::1]:443", false},
		{"example.com", "443", "[fe80::1%eth0]:443", false},
		{"example.com", "443", "[::ffff:127.0.0.1]:443", false},
		{"example.com", "80", "93.184.215.14:80", true},
		{"example.com", "80", "93.184.215.14:81", false}, // not the port asked for
		{"example.com", "80", "not an address", false},
	} {
		err := g.Control(c.host, c.port)("tcp", c.address, nil)
		if (err == nil) != c.ok {
			t.Errorf("%s at %s: Control = %v, want allowed %v", c.host, c.address, err, c.ok)
		}
	}
	listed := &Guard{Allow: mustAllow(t, "hooks.internal", "10.0.0.9")}
	if err := listed.Control("hooks.internal", "80")("tcp", "10.0.0.1:80", nil); err != nil {
		t.Errorf("a listed name: %v", err)
	}
	if err := listed.Control("other.internal", "80")("tcp", "10.0.0.9:80", nil); err != nil {
		t.Errorf("a listed IP: %v", err)
	}
	if err := listed.Control("other.internal", "80")("tcp", "10.0.0.1:80", nil); err == nil {
		t.Error("an unlisted name at an unlisted private IP was allowed")
	}

	// A real dial to a loopback listener, refused by Control: no connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Addr, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr()
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	d := net.Dialer{Control: g.Control("public.test", port)}
	if _, err := d.Dial("tcp", ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("dial through Control = %v, want a refusal", err)
	}
	// A plain dial after it: the listener accepts in arrival order, so
	// the first connection it accepts is the refused dial's, if it made
	// one.
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	select {
	case from := <-accepted:
		if from.String() != plain.LocalAddr().String() {
			t.Fatalf("the listener accepted a connection from %s before the plain dial's (%s)", from, plain.LocalAddr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener accepted nothing")
	}
}

func TestAllowListSyntax(t *testing.T) {
	for _, bad := range []string{"https://x.example.com", "x.example.com/path", "*", "*.", "a@b", "x:0", "x:65536", "x:08", "[::1", "fe80::1%eth0", "a b"} {
		if _, err := ParseAllowListFlag("--source-allow", []string{bad}); err == nil || !strings.Contains(err.Error(), "--source-allow") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	l := mustAllow(t, " Hooks.Example.com ", "*.corp.example", "10.0.0.5:8443", "[::1]", "0:0:0:0:0:0:0:1:9000", "")
	for _, c := range []struct {
		host, port string
		ok         bool
	}{
		{"hooks.example.com", "443", true},
		{"HOOKS.EXAMPLE.COM", "1", true},
		{"a.corp.example", "80", true},
		{"corp.example", "80", false},
		{"10.0.0.5", "8443", true},
		{"10.0.0.5", "443", false},
		{"::1", "22", true},
		{"[::1]", "22", true},
		{"0::1", "22", true},
		{"127.0.0.1", "80", false},
		{"1.corp.example", "80", true},
	} {
		if got := l.AllowsHostPort(c.host, c.port); got != c.ok {
			t.Errorf("AllowsHostPort(%q, %q) = %v", c.host, c.port, got)
		}
	}
	// A wildcard never matches an IP.
	if mustAllow(t, "*.0.0.1").AllowsHostPort("127.0.0.1", "80") {
		t.Error("*.0.0.1 matched 127.0.0.1")
	}
	if !l.Allows(&url.URL{Scheme: "https", Host: "hooks.example.com"}) || l.Allows(&url.URL{Scheme: "http", Host: "10.0.0.5"}) {
		t.Error("Allows with the scheme's port")
	}
}

// FuzzGuard: any allow list and URL; the guard never panics, and an
// internal IP literal is reached only when the list names it (or its host).
func FuzzGuard(f *testing.F) {
	for _, s := range [][2]string{
		{"127.0.0.1", "http://127.0.0.1:8080/x"},
		{"", "http://169.254.169.254/"},
		{"*.example.com", "https://a.example.com/"},
		{"[::1]:80", "http://[::1]/"},
		{"10.0.0.5:443", "https://10.0.0.5/"},
		{"localhost", "http://localhost./"},
		{"", "http://[::ffff:10.0.0.1]/"},
		{"", "http://0x7f.1/"},
	} {
		f.Add(s[0], s[1])
	}
	dns := newFakeDNS(map[string][]string{"a.example.com": {"93.184.215.14"}, "x.internal": {"10.9.9.9"}})
	f.Fuzz(func(t *testing.T, entries, raw string) {
		l, err := ParseAllowListFlag("--webhook-allow", strings.Split(entries, ","))
		if err != nil {
			return
		}
		// The list's String form parses to the same list.
		again, err := ParseAllowListFlag("--webhook-allow", strings.Split(l.String(), ", "))
		if err != nil || again.String() != l.String() {
			t.Fatalf("%q: String %q reparses to %q (%v)", entries, l.String(), again.String(), err)
		}
		u, err := CheckURL(raw)
		if err != nil {
			return
		}
		g := &Guard{Allow: l, Resolve: dns.resolve}
		err = g.Check(context.Background(), u)
		port := u.Port()
		if port == "" {
			port = defaultPorts[u.Scheme]
		}
		ip, perr := netip.ParseAddr(strings.Trim(u.Hostname(), "[]"))
		if perr != nil || ip.Zone() != "" {
			return
		}
		internal := AddressClass(ip) != ""
		listed := l.AllowsHostPort(u.Hostname(), port)
		if internal && !listed && err == nil {
			t.Fatalf("%q: %s (internal, not listed) was allowed", entries, raw)
		}
		if (!internal || listed) && err != nil {
			t.Fatalf("%q: %s (public or listed) was refused: %v", entries, raw, err)
		}
		if c := g.Control(u.Hostname(), port)("tcp", net.JoinHostPort(ip.String(), port), nil); (c == nil) != (err == nil) {
			t.Fatalf("%q: %s: Control %v, Check %v", entries, raw, c, err)
		}
	})
}
