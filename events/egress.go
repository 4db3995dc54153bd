package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What the server reaches for a tenant (the "Trust model" of DESIGN.md):
// a webhook or notify delivery never reaches a loopback, private,
// link-local (cloud metadata), unspecified, shared (CGNAT), multicast or
// reserved address unless the operator lists its host (--webhook-allow,
// --notify-allow). A Guard checks a URL when it is registered and again at
// every connection: its dialer resolves the name, checks every address, and
// connects to a checked address only, checked once more on the raw socket
// address just before the connect (so a name that resolves elsewhere the
// second time, DNS rebinding, gains nothing).

// AddressClass names why an address is internal: "" for a public address.
func AddressClass(ip netip.Addr) string {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return AddressClass(ip.Unmap())
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			// 64:ff9b::a.b.c.d reaches a.b.c.d through a NAT64 gateway.
			return AddressClass(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(ip):
			// 2002:AABB:CCDD::/48 is 6to4 for A.B.C.D.
			return AddressClass(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, r := range internalRanges {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	if !ip.IsValid() {
		return classReserved
	}
	return ""
}

// Address classes.
const (
	classLoopback    = "loopback"
	classPrivate     = "private"
	classLinkLocal   = "link-local (cloud metadata)"
	classUnspecified = "unspecified"
	classShared      = "shared (CGNAT)"
	classMulticast   = "multicast"
	classReserved    = "reserved"
)

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

var internalRanges = func() []struct {
	prefix netip.Prefix
	class  string
} {
	var out []struct {
		prefix netip.Prefix
		class  string
	}
	for _, r := range [][2]string{
		{"0.0.0.0/8", classUnspecified}, // "this network"; 0.0.0.0 reaches the host itself
		{"10.0.0.0/8", classPrivate},
		{"100.64.0.0/10", classShared},
		{"127.0.0.0/8", classLoopback},
		{"169.254.0.0/16", classLinkLocal}, // 169.254.169.254: the cloud metadata service
		{"172.16.0.0/12", classPrivate},
		{"192.0.0.0/24", classReserved}, // IETF protocol assignments (192.0.0.192: a metadata service)
		{"192.168.0.0/16", classPrivate},
		{"198.18.0.0/15", classReserved}, // benchmarking
		{"224.0.0.0/4", classMulticast},
		{"240.0.0.0/4", classReserved}, // 255.255.255.255 included
		{"::/128", classUnspecified},
		{"::1/128", classLoopback},
		{"::/96", classReserved}, // IPv4-compatible (deprecated)
		{"100::/64", classReserved},
		{"64:ff9b:1::/48", classPrivate}, // local-use NAT64
		{"2001::/32", classReserved},     // Teredo
		{"fc00::/7", classPrivate},       // unique local (fd00:ec2::254: a metadata service)
		{"fe80::/10", classLinkLocal},
		{"fec0::/10", classPrivate}, // site-local (deprecated)
		{"ff00::/8", classMulticast},
	} {
		out = append(out, struct {
			prefix netip.Prefix
			class  string
		}{netip.MustParsePrefix(r[0]), r[1]})
	}
	return out
}()

// Resolver looks up the addresses of a host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// systemResolver is the default Resolver.
func systemResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// RefusedError is a destination a Guard does not reach. Its message names
// the kind of address and the flag that would allow it, never the address a
// name resolved to.
type RefusedError struct {
	// Class is the address's (AddressClass), or why the host could not be
	// checked.
	Class string
	// Resolved is set when the host is a name that resolved to Class.
	Resolved bool
	// Flag is the allow list's flag, such as --webhook-allow.
	Flag string
}

func (e *RefusedError) Error() string {
	what := "the host is a " + e.Class + " address"
	if e.Resolved {
		what = "the host resolves to a " + e.Class + " address"
	}
	return what + "; this server reaches only public addresses unless " + e.Flag + " lists the host"
}

// LookupError is a host name that could not be resolved.
type LookupError struct{ NotFound bool }

func (e *LookupError) Error() string {
	if e.NotFound {
		return "the host name does not resolve"
	}
	return "the host name could not be resolved"
}

// Guard decides which addresses deliveries may reach, and dials only
// those. The zero Guard reaches public addresses only.
type Guard struct {
	// Allow lists hosts (names or IPs, with an optional port) reached
	// wherever they are: a listed name may resolve to any address, a
	// listed IP may be internal.
	Allow AllowList
	// Flag names Allow in messages (default --webhook-allow).
	Flag string
	// Resolve looks up names (default: the system resolver). Tests
	// replace it.
	Resolve Resolver
	// DialTimeout bounds one connect (default 10s).
	DialTimeout time.Duration
}

func (g *Guard) flag() string {
	if g == nil || g.Flag == "" {
		return "--webhook-allow"
	}
	return g.Flag
}

func (g *Guard) allow() AllowList {
	if g == nil {
		return AllowList{}
	}
	return g.Allow
}

// Check resolves u's host and checks every address it has (a URL already
// through CheckURL). A refusal is a *RefusedError; a name that does not
// resolve, a *LookupError.
func (g *Guard) Check(ctx context.Context, u *url.URL) error {
	port := u.Port()
	if port == "" {
		port = defaultPorts[strings.ToLower(u.Scheme)]
	}
	_, err := g.resolve(ctx, u.Hostname(), port)
	return err
}

// defaultPorts are the ports of URL schemes without an explicit one.
var defaultPorts = map[string]string{"http": "80", "https": "443", "ssh": "22", "git": "9418"}

// resolve returns the addresses of host, each allowed at port, or the
// refusal of the first that is not.
func (g *Guard) resolve(ctx context.Context, host, port string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	listed := g.allow().AllowsHostPort(host, port)
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.checkAddr(ip, port, listed, false); err != nil {
			return nil, err
		}
		return []netip.Addr{ip}, nil
	}
	if host == "" {
		return nil, &RefusedError{Class: classUnspecified, Flag: g.flag()}
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if !listed && (lower == "localhost" || strings.HasSuffix(lower, ".localhost")) {
		// RFC 6761: always loopback, whatever a resolver says.
		return nil, &RefusedError{Class: classLoopback, Resolved: true, Flag: g.flag()}
	}
	resolve := systemResolver
	if g != nil && g.Resolve != nil {
		resolve = g.Resolve
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var de *net.DNSError
		return nil, &LookupError{NotFound: errors.As(err, &de) && de.IsNotFound}
	}
	if len(ips) == 0 {
		return nil, &LookupError{NotFound: true}
	}
	for _, ip := range ips {
		if err := g.checkAddr(ip, port, listed, true); err != nil {
			return nil, err
		}
	}
	return ips, nil
}

// checkAddr allows ip at port when it is public, its host is listed, or
// the list names the IP itself.
func (g *Guard) checkAddr(ip netip.Addr, port string, listed, resolved bool) error {
	if listed {
		return nil
	}
	class := AddressClass(ip)
	if class == "" || g.allow().AllowsHostPort(ip.WithZone("").String(), port) {
		return nil
	}
	return &RefusedError{Class: class, Resolved: resolved, Flag: g.flag()}
}

// DialContext is the dialer of deliveries: it resolves addr's host, checks
// every address it has, and connects to the checked addresses only, each
// checked again on the socket's own address just before the connect. The
// host's name is not looked up again, so the connection is pinned to what
// was checked.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("invalid port")
	}
	ips, err := g.resolve(ctx, host, port)
	if err != nil {
		return nil, err
	}
	timeout := AttemptTimeout
	if g != nil && g.DialTimeout > 0 {
		timeout = g.DialTimeout
	}
	d := net.Dialer{Timeout: timeout, Control: g.Control(host, port)}
	var first error
	for _, ip := range ips {
		if (network == "tcp4" && !ip.Unmap().Is4()) || (network == "tcp6" && ip.Is4()) {
			continue
		}
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if first == nil {
		first = &net.AddrError{Err: "no address of the host's family", Addr: host}
	}
	return nil, first
}

// Control returns the net.Dialer Control func of a connection to host at
// port: it checks the address the socket is about to connect to (after
// every resolution), and refuses an internal one unless host is listed or
// the list names that address. It runs before the connect, so a refused
// address is never reached.
func (g *Guard) Control(host, port string) func(network, address string, c syscall.RawConn) error {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	listed := g.allow().AllowsHostPort(host, port)
	_, notIP := netip.ParseAddr(host)
	resolved := notIP != nil
	return func(_, address string, _ syscall.RawConn) error {
		h, p, err := net.SplitHostPort(address)
		if err != nil {
			return &RefusedError{Class: classReserved, Flag: g.flag()}
		}
		ip, err := netip.ParseAddr(h)
		if err != nil || p != port {
			return &RefusedError{Class: classReserved, Flag: g.flag()}
		}
		return g.checkAddr(ip, port, listed, resolved)
	}
}
