package devserver

import (
	"fmt"
	"net"
	"strconv"
)

// listenAddr is a validated host:port to listen on.
type listenAddr struct {
	// ip to bind; never empty.
	ip net.IP
	// port; 0 until resolved.
	port int
	// localhost is true when the user wrote "localhost".
	localhost bool
}

func parseListenAddr(what, s string) (listenAddr, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return listenAddr{}, fmt.Errorf("%s %q: %w", what, s, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return listenAddr{}, fmt.Errorf("%s %q: invalid port", what, s)
	}
	a := listenAddr{port: port}
	switch host {
	case "":
		a.ip = net.IPv4(127, 0, 0, 1)
	case "localhost":
		a.ip = net.IPv4(127, 0, 0, 1)
		a.localhost = true
	default:
		a.ip = net.ParseIP(host)
		if a.ip == nil {
			return listenAddr{}, fmt.Errorf("%s %q: host must be an IP address or \"localhost\"", what, s)
		}
	}
	return a, nil
}

// bindHost is the host to listen on.
func (a listenAddr) bindHost() string { return a.ip.String() }

// dialHost is the host clients in this process use to connect: the loopback
// address of the same family when binding to all interfaces.
func (a listenAddr) dialHost() string {
	if a.ip.IsUnspecified() {
		if a.ip.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return a.ip.String()
}

func (a listenAddr) dialAddress() string {
	return net.JoinHostPort(a.dialHost(), strconv.Itoa(a.port))
}

func (a listenAddr) bindAddress() string {
	return net.JoinHostPort(a.bindHost(), strconv.Itoa(a.port))
}

// reservation holds listeners open while several free ports are chosen, so
// the same port is not handed out twice. Release closes them just before the
// servers bind; another process could still grab a port in that short gap.
type reservation struct {
	ls []net.Listener
}

// reserve picks a free port on host.
func (r *reservation) reserve(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	r.ls = append(r.ls, l)
	return l.Addr().(*net.TCPAddr).Port, nil
}

// check verifies that addr can be bound now and keeps it bound until
// release. The UI server exits the process (echo's Logger.Fatal) when it
// cannot listen, and Temporal treats it as fatal too, so a taken port must be
// caught here.
func (r *reservation) check(what, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s is not available: %w", what, addr, err)
	}
	r.ls = append(r.ls, l)
	return nil
}

func (r *reservation) release() {
	for _, l := range r.ls {
		_ = l.Close()
	}
	r.ls = nil
}
