package events

import (
	"strings"
	"testing"
)

func TestLocateSource(t *testing.T) {
	for _, c := range []struct {
		src, want string // want: scheme host port [registry], or "error"
	}{
		{"https://example.com/mod.tar.gz", "https example.com "},
		{"http://127.0.0.1/x", "http 127.0.0.1 "},
		{"http://169.254.169.254/latest/meta-data/", "http 169.254.169.254 "},
		{"http://[::1]:8080/x.zip", "http ::1 8080"},
		{"http://%31%32%37.0.0.1/x", "error"}, // Go's URL parser (Terraform's too) refuses it
		{"git::http://127.0.0.1/x", "http 127.0.0.1 "},
		{"git::https://github.com/org/repo.git//modules/vpc?ref=v1.2.0", "https github.com "},
		{"git::ssh://git@GitHub.com:2222/org/repo.git", "ssh github.com 2222"},
		{"git::git@github.com:org/repo.git", "ssh github.com "},
		{"git@github.com:org/repo.git", "ssh github.com "},
		{"hg::http://hg.example.com/repo", "http hg.example.com "},
		{"s3::https://s3-eu-west-1.amazonaws.com/bucket/vpc.zip", "https s3-eu-west-1.amazonaws.com "},
		{"s3::http://10.0.0.7:9000/bucket/x.zip", "http 10.0.0.7 9000"},
		{"gcs::https://www.googleapis.com/storage/v1/bucket/x.zip", "https www.googleapis.com "},
		{"bucket.s3.amazonaws.com/vpc.zip", "https bucket.s3.amazonaws.com "},
		{"github.com/hashicorp/example", "https github.com "},
		{"github.com/hashicorp/example//sub?ref=v1", "https github.com "},
		{"git::github.com/hashicorp/example", "https github.com "},
		{"https::example.com/x.zip", "https example.com "},
		{"hashicorp/consul/aws", "https registry.terraform.io  registry"},
		{"hashicorp/consul/aws//modules/x", "https registry.terraform.io  registry"},
		{"app.terraform.io/org/vpc/aws", "https app.terraform.io  registry"},
		{"weird::https://x.example.com/", "https x.example.com "},
		{"file:///etc", "error"},
		{"file::/etc", "error"},
		{"git::file:///etc", "error"},
		{"https://user:pw@example.com/x", "error"},
		{"/abs/path", "error"},
		{"./rel", "error"},
		{"foo", "error"},
		{"foo/bar", "error"},
		{"git::a/b/c", "error"},
		{"mailto:x@example.com", "error"},
		{"github.com:org/repo", "error"}, // a URL of scheme github.com to go-getter
		{"http:///nohost", "error"},
		{"https://exa mple.com/", "error"},
		{"https://[fe80::1%25eth0]/", "error"},
	} {
		loc, err := LocateSource(c.src, TerraformRegistry)
		got := "error"
		if err == nil {
			got = loc.Scheme + " " + loc.Host + " " + loc.Port
			if loc.Registry {
				got += " registry"
			}
		}
		if got != c.want {
			t.Errorf("LocateSource(%q) = %q (%v), want %q", c.src, got, err, c.want)
		}
	}
	if loc, _ := LocateSource("hashicorp/consul/aws", OpenTofuRegistry); loc.Host != OpenTofuRegistry {
		t.Errorf("OpenTofu's registry: %+v", loc)
	}
}

// TestCheckSource: remote sources are refused unless --source-allow lists
// their host; local paths are the runner's to check.
func TestCheckSource(t *testing.T) {
	var none AllowList
	for _, src := range []string{
		"git::http://127.0.0.1/x", "http://169.254.169.254/", "https://example.com/x.zip",
		"s3::https://s3.amazonaws.com/bucket/x.zip", "gcs::https://www.googleapis.com/storage/v1/b/x",
		"hg::http://hg.example.com/r", "hashicorp/consul/aws", "github.com/org/repo",
	} {
		err := CheckSource(src, TerraformRegistry, none)
		if err == nil || !strings.Contains(err.Error(), "--source-allow") {
			t.Errorf("%s with no list: %v", src, err)
		}
	}
	for _, src := range []string{"/srv/modules/vpc", "./x", "../y"} {
		if err := CheckSource(src, TerraformRegistry, none); err != nil {
			t.Errorf("local %s: %v", src, err)
		}
	}
	allow, err := ParseAllowListFlag("--source-allow", []string{"127.0.0.1", "github.com", "*.amazonaws.com", "registry.terraform.io", "git.example.com:22"})
	if err != nil {
		t.Fatal(err)
	}
	for src, ok := range map[string]bool{
		"git::http://127.0.0.1/x":                        true,
		"http://127.0.0.1:8080/x.tar.gz":                 true,
		"http://169.254.169.254/":                        false,
		"git::https://github.com/org/repo.git?ref=v1":    true,
		"git@github.com:org/repo.git":                    true,
		"s3::https://s3.amazonaws.com/bucket/x.zip":      true,
		"bucket.s3.amazonaws.com/x.zip":                  true,
		"gcs::https://www.googleapis.com/storage/v1/b/x": false,
		"hashicorp/consul/aws":                           true,
		"app.terraform.io/org/vpc/aws":                   false,
		"git::ssh://git@git.example.com/r.git":           true,
		"git::https://git.example.com/r.git":             false, // that host at port 22 only
		"github.com.evil.example/org/repo":               false,
		"git::http://127.0.0.1.nip.io/x":                 false,
	} {
		err := CheckSource(src, TerraformRegistry, allow)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", src, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--source-allow: 127.0.0.1, github.com") {
			t.Errorf("%s: message %q", src, err)
		}
	}
	if err := CheckSource("hashicorp/consul/aws", OpenTofuRegistry, allow); err == nil || !strings.Contains(err.Error(), "registry.opentofu.org") {
		t.Errorf("OpenTofu's registry: %v", err)
	}
}

// FuzzCheckSource: whatever the address, a source passes an empty list only
// when it is a local path, and passes a list only when its host is listed.
func FuzzCheckSource(f *testing.F) {
	for _, s := range []string{
		"git::http://127.0.0.1/x", "http://169.254.169.254/", "s3::https://s3.amazonaws.com/b/k", "hashicorp/consul/aws",
		"git@github.com:o/r.git", "github.com/o/r//s?ref=1", "/abs", "./rel", "file::/x", "gcs::https://www.googleapis.com/storage/v1/b",
		"x::y::http://127.0.0.1/", "http://[::1]:80/", "https://u@h.example/x",
	} {
		f.Add(s, "127.0.0.1")
	}
	f.Fuzz(func(t *testing.T, src, entry string) {
		if err := CheckSource(src, TerraformRegistry, AllowList{}); err == nil && !IsLocalSource(src) {
			t.Fatalf("%q passed an empty list", src)
		}
		allow, err := ParseAllowListFlag("--source-allow", []string{entry})
		if err != nil {
			return
		}
		err = CheckSource(src, TerraformRegistry, allow)
		if IsLocalSource(src) {
			if err != nil {
				t.Fatalf("local %q: %v", src, err)
			}
			return
		}
		loc, lerr := LocateSource(src, TerraformRegistry)
		if lerr != nil {
			if err == nil {
				t.Fatalf("%q: located nowhere (%v) but passed", src, lerr)
			}
			return
		}
		port := loc.Port
		if port == "" {
			port = defaultPorts[loc.Scheme]
		}
		if (err == nil) != allow.AllowsHostPort(loc.Host, port) {
			t.Fatalf("%q with %q: CheckSource %v, host %s:%s", src, entry, err, loc.Host, port)
		}
		// A URL's host is the one Go's URL parser sees.
		if !strings.Contains(src, "://") || loc.Registry {
			return
		}
		if strings.Contains(loc.Host, "/") || strings.Contains(loc.Host, "@") {
			t.Fatalf("%q: host %q", src, loc.Host)
		}
	})
}
