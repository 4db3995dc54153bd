package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestHardeningFlags: dev and server take the HTTP hardening flags, from
// flag, environment or config file, with the documented defaults; half a
// TLS pair is refused.
func TestHardeningFlags(t *testing.T) {
	defaults := map[string]string{
		"http-read-timeout": "30s (default)", "http-write-timeout": "1m0s (default)", "http-idle-timeout": "2m0s (default)",
		"max-streams-per-key": "16 (default)", "tls-cert-file": " (default)", "tls-key-file": " (default)",
	}
	for _, command := range []string{"dev", "server"} {
		cleanEnv(t)
		got := checked(t, command)
		for k, want := range defaults {
			if got[k] != want {
				t.Errorf("%s %s = %q, want %q", command, k, got[k], want)
			}
		}
		t.Setenv("TERRATASK_TLS_CERT_FILE", "/etc/tt/cert.pem")
		got = checked(t, command, "--config", writeFile(t, "c.yaml", "tls-key-file: /etc/tt/key.pem\nmax-streams-per-key: 4\nhttp-read-timeout: 10s\n"),
			"--http-idle-timeout", "30s")
		for k, want := range map[string]string{"tls-cert-file": "/etc/tt/cert.pem (env)", "tls-key-file": "/etc/tt/key.pem (file)",
			"max-streams-per-key": "4 (file)", "http-read-timeout": "10s (file)", "http-idle-timeout": "30s (flag)"} {
			if got[k] != want {
				t.Errorf("%s %s = %q, want %q", command, k, got[k], want)
			}
		}
		cleanEnv(t)
		code, out, _ := runCLI(t, command, "--help")
		for k := range defaults {
			if code != 0 || !strings.Contains(out, "--"+k) {
				t.Errorf("%s --help does not mention --%s", command, k)
			}
		}
	}
	cleanEnv(t)
	keys := writeFile(t, "keys.yaml", "keys:\n  - {name: ci, org: acme, role: operator, hash: \"sha256:"+strings.Repeat("ab", 32)+"\"}\n")
	code, _, errOut := runCLI(t, "server", "--api-keys-file", keys, "--store", filepath.Join(t.TempDir(), "s.db"), "--tls-cert-file", "/etc/tt/cert.pem")
	if code == 0 || !strings.Contains(errOut, "give both --tls-cert-file and --tls-key-file, or neither") {
		t.Errorf("half a pair: exit %d, stderr %q", code, errOut)
	}
}
