package events

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// Module sources (a task's `source` parameter), as Terraform and OpenTofu
// read them: a local path (copied by the runner from its source roots), or
// a remote address fetched by `terraform init -from-module`: a URL
// (http://, https://, s3::https://..., git::ssh://...), a forced getter
// (git::, hg::, s3::, gcs::, http::, https::, any NAME::), an SCP-like Git
// address (git@github.com:org/repo.git), a shorthand (github.com/org/repo,
// BUCKET.s3.amazonaws.com/key, www.googleapis.com/storage/...), or a module
// registry address (NAMESPACE/NAME/SYSTEM on the engine's public registry,
// HOST/NAMESPACE/NAME/SYSTEM on HOST). A remote source is fetched only from
// a host --source-allow lists.

// Public registries of module addresses that name no host.
const (
	TerraformRegistry = "registry.terraform.io"
	OpenTofuRegistry  = "registry.opentofu.org"
)

// SourceLocation is where a remote module source is fetched from.
type SourceLocation struct {
	// Getter is the forced getter ("git", "s3", ...) or "".
	Getter string
	// Scheme is the URL scheme the fetch uses: https, http, ssh, git, ...
	Scheme string
	// Host is the host contacted (lower case; an IP without brackets), Port
	// its port ("" when the scheme's default).
	Host, Port string
	// Registry is set for a module registry address.
	Registry bool
}

// IsLocalSource reports whether a source is a path on the runner's file
// system: absolute, or ./ or ../ relative.
func IsLocalSource(src string) bool {
	return filepath.IsAbs(src) || src == "." || src == ".." ||
		strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../")
}

var (
	forcedGetterRe = regexp.MustCompile(`^([A-Za-z0-9]+)::(.+)$`)
	scpLikeRe      = regexp.MustCompile(`^(?:[^@/:]+@)?([^@/:]+):(.+)$`)
	hostRe         = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*$`)
	registryPartRe = regexp.MustCompile(`^[0-9A-Za-z]([0-9A-Za-z_-]{0,62}[0-9A-Za-z])?$`)
)

// ErrSourceHost is a remote source whose host cannot be told.
var ErrSourceHost = errors.New("is not a module source address whose host can be told (a URL, GETTER::URL, user@host:path, host/path or a registry address)")

// LocateSource returns the host a remote module source is fetched from.
// registry is the public registry of addresses that name none (the
// engine's). A local source, or a file:// or file:: one, is an error: they
// are not remote.
func LocateSource(src, registry string) (SourceLocation, error) {
	var loc SourceLocation
	if IsLocalSource(src) {
		return loc, errors.New("is a local path, not a remote source")
	}
	rest := src
	if m := forcedGetterRe.FindStringSubmatch(src); m != nil {
		loc.Getter, rest = strings.ToLower(m[1]), m[2]
	}
	if loc.Getter == "file" || strings.HasPrefix(strings.ToLower(rest), "file:") {
		return loc, errors.New("is a file source: give an absolute path inside an allowed source root")
	}
	if u, err := url.Parse(rest); strings.Contains(rest, "://") || (err == nil && u.Scheme != "") {
		// A URL (go-getter takes anything with a scheme for one).
		if err != nil || u.Host == "" || u.Opaque != "" {
			return loc, ErrSourceHost
		}
		if _, pw := u.User.Password(); pw {
			return loc, errors.New("must not hold credentials (user:password@): they would appear on a command line; pass them through env")
		}
		loc.Scheme = strings.ToLower(u.Scheme)
		loc.Host, loc.Port = u.Hostname(), u.Port()
		return checkedHost(loc)
	}
	if m := scpLikeRe.FindStringSubmatch(rest); m != nil {
		// user@host:path (Git over SSH).
		loc.Scheme, loc.Host = "ssh", m[1]
		return checkedHost(loc)
	}
	// A shorthand or a registry address: host/path, or
	// namespace/name/system on the public registry.
	path := rest
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if i := strings.Index(path, "//"); i >= 0 {
		path = path[:i] // a subdirectory of the package
	}
	parts := strings.Split(path, "/")
	loc.Scheme = "https"
	if len(parts) == 3 && loc.Getter == "" && registryPartRe.MatchString(parts[0]) && registryPartRe.MatchString(parts[1]) && registryPartRe.MatchString(parts[2]) {
		loc.Host, loc.Registry = registry, true
		return checkedHost(loc)
	}
	if len(parts) < 2 || !strings.Contains(parts[0], ".") {
		return loc, ErrSourceHost
	}
	loc.Host = parts[0]
	loc.Registry = len(parts) == 4 && loc.Getter == ""
	return checkedHost(loc)
}

// checkedHost validates and normalises loc's host.
func checkedHost(loc SourceLocation) (SourceLocation, error) {
	h := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(loc.Host, "["), "]"))
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return loc, ErrSourceHost
		}
		loc.Host = ip.String()
		return loc, nil
	}
	if !hostRe.MatchString(h) {
		return loc, ErrSourceHost
	}
	loc.Host = h
	return loc, nil
}

// CheckSource checks a task's module source against --source-allow: a
// local path passes (the runner checks it against its source roots); a
// remote source passes only when the list names its host. registry is the
// public registry of registry addresses without a host (TerraformRegistry
// or OpenTofuRegistry). The message says what is wrong, for the field
// "source".
func CheckSource(src, registry string, allow AllowList) error {
	if IsLocalSource(src) {
		return nil
	}
	loc, err := LocateSource(src, registry)
	if err != nil {
		return err
	}
	port := loc.Port
	if port == "" {
		port = defaultPorts[loc.Scheme]
	}
	what := "the host " + loc.Host
	if loc.Registry {
		what = "the module registry " + loc.Host
	}
	switch {
	case allow.Empty():
		return fmt.Errorf("names %s: this server fetches no remote module sources (it runs without --source-allow); use a module of the runner's catalog or inline files", what)
	case !allow.AllowsHostPort(loc.Host, port):
		return fmt.Errorf("names %s, which is not one this server fetches module sources from (--source-allow: %s)", what, allow)
	}
	return nil
}
