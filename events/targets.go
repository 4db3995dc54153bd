package events

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// MaxURLLen bounds a webhook or notify URL.
const MaxURLLen = 2048

// CheckURL validates a webhook or notify URL: absolute http or https, with a
// host, without credentials or a fragment. Its messages never repeat the
// URL.
func CheckURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is required")
	}
	if len(raw) > MaxURLLen {
		return nil, fmt.Errorf("must be at most %d characters", MaxURLLen)
	}
	if strings.ContainsAny(raw, " \t\r\n\x00") {
		return nil, errors.New("must not contain spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be an http:// or https:// URL")
	case u.User != nil:
		return nil, errors.New("must not hold credentials (user:password@): receivers authenticate deliveries by their signature")
	case u.Hostname() == "":
		return nil, errors.New("must name a host")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("must not have a fragment")
	case u.Opaque != "":
		return nil, errors.New("is not a valid URL")
	}
	if p := u.Port(); p != "" && !validPort(p) {
		return nil, errors.New("has an invalid port")
	}
	return u, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536 && !strings.HasPrefix(p, "0")
}

// AllowList is a list of hosts: those a task's notify URL may name
// (--notify-allow), those webhooks may reach although they are not public
// (--webhook-allow), those remote module sources may name (--source-allow).
// An entry is a host name or IP ("hooks.example.com", "10.0.0.5",
// "[fd00::5]"), optionally with a port ("hooks.example.com:8443": that port
// only), or a wildcard for the subdomains of a domain ("*.example.com").
// Names compare case-insensitively, IPs by value. The empty list allows
// nothing.
type AllowList struct {
	entries []allowEntry
}

type allowEntry struct {
	host     string // lower case; for a wildcard, the suffix with its dot
	port     string // "" for any port
	wildcard bool
}

// ParseAllowList parses --notify-allow entries.
func ParseAllowList(entries []string) (AllowList, error) {
	return ParseAllowListFlag("--notify-allow", entries)
}

// ParseAllowListFlag parses the entries of an allow-list flag (named in
// errors): --notify-allow, --webhook-allow or --source-allow.
func ParseAllowListFlag(flag string, entries []string) (AllowList, error) {
	var l AllowList
	for _, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		if e == "" {
			continue
		}
		if strings.ContainsAny(e, "/?#@ ") || strings.Count(e, "[") != strings.Count(e, "]") {
			return AllowList{}, fmt.Errorf("%s %q: want a host, host:port or *.domain (not a URL)", flag, raw)
		}
		var a allowEntry
		host := e
		if h, p, err := net.SplitHostPort(e); err == nil {
			host, a.port = h, p
			if !validPort(p) {
				return AllowList{}, fmt.Errorf("%s %q: invalid port", flag, raw)
			}
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if strings.HasPrefix(host, "*.") {
			a.wildcard = true
			host = host[1:] // ".example.com"
		}
		if host == "" || host == "." || strings.ContainsAny(host, "/*?#@ []") {
			return AllowList{}, fmt.Errorf("%s %q: want a host, host:port or *.domain", flag, raw)
		}
		if ip, err := netip.ParseAddr(host); err == nil && !a.wildcard {
			if ip.Zone() != "" {
				return AllowList{}, fmt.Errorf("%s %q: an IP with a zone is not a host", flag, raw)
			}
			host = ip.String()
		}
		a.host = host
		l.entries = append(l.entries, a)
	}
	return l, nil
}

// Empty reports whether the list allows nothing.
func (l AllowList) Empty() bool { return len(l.entries) == 0 }

// Allows reports whether u's host (and port) is listed.
func (l AllowList) Allows(u *url.URL) bool {
	port := u.Port()
	if port == "" {
		port = defaultPorts[strings.ToLower(u.Scheme)]
	}
	return l.AllowsHostPort(u.Hostname(), port)
}

// AllowsHostPort reports whether host at port is listed. An IP matches
// entries of the same IP only, never a wildcard.
func (l AllowList) AllowsHostPort(host, port string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	ip, err := netip.ParseAddr(host)
	isIP := err == nil
	if isIP {
		if ip.Zone() != "" {
			return false
		}
		host = ip.String()
	}
	for _, e := range l.entries {
		if e.port != "" && e.port != port {
			continue
		}
		if e.wildcard {
			if !isIP && strings.HasSuffix(host, e.host) && len(host) > len(e.host) {
				return true
			}
			continue
		}
		if host == e.host {
			return true
		}
	}
	return false
}

// String lists the entries, for messages.
func (l AllowList) String() string {
	parts := make([]string, len(l.entries))
	for i, e := range l.entries {
		h := e.host
		if e.wildcard {
			h = "*" + h
		}
		if e.port != "" {
			h = net.JoinHostPort(h, e.port)
		}
		parts[i] = h
	}
	return strings.Join(parts, ", ")
}

// Target is where one of a task's events goes: a webhook (its ID) or the
// task's notify URL (ID store.NotifyTarget, URL set).
type Target struct {
	ID  string
	URL string
}

// NotifyMatches reports whether a task's notify subscribes to an event
// type: every task event when it lists none.
func NotifyMatches(n *task.Notify, typ task.EventType) bool {
	if n == nil || n.URL == "" || typ == task.EventPing {
		return false
	}
	if len(n.Events) == 0 {
		return typ.Valid()
	}
	for _, e := range n.Events {
		if e == typ {
			return true
		}
	}
	return false
}

// Targets returns the targets an event goes to: the matching webhooks of
// its org and the task's notify.
func Targets(e store.Event, hooks []store.Webhook, notify *task.Notify) []Target {
	var out []Target
	for _, h := range hooks {
		if h.Org == e.Org && h.Matches(e) {
			out = append(out, Target{ID: h.ID})
		}
	}
	if NotifyMatches(notify, e.Type) {
		out = append(out, Target{ID: store.NotifyTarget, URL: notify.URL})
	}
	return out
}
