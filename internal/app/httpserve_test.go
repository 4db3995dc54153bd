package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/mcp"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/server"
)

const testAdminKey = "k-admin-test"

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost
// (its own CA) to dir, and returns the files and a pool trusting it.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// testAPI is the API over a SQLite store, with an admin key and the MCP
// endpoint (its tools calling the API in process, as newAPI mounts it).
func testAPI(t *testing.T, writeTimeout time.Duration) *server.Server {
	t.Helper()
	kr, err := auth.NewKeyring([]auth.Key{{Name: "admin", Org: "default", Role: auth.RoleAdmin, Hash: auth.HashKey(testAdminKey)}})
	if err != nil {
		t.Fatal(err)
	}
	box, err := master.New(bytes.Repeat([]byte{3}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	var api *server.Server
	self := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.Handler().ServeHTTP(w, server.InProcess(r)) })
	api = server.New(server.Options{Store: openSQLite(t), Keys: kr, Secrets: box, MCP: mcp.HTTPHandler(self, "test"), WriteTimeout: writeTimeout})
	return api
}

// startAPI serves api with o on a loopback port and returns its address.
func startAPI(t *testing.T, api *server.Server, o HTTPOptions) string {
	t.Helper()
	tlsCfg, err := o.check(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveAPI(ln, api, zap.NewNop(), o, tlsCfg)
	t.Cleanup(func() { _ = shutdownHTTP(srv) })
	return ln.Addr().String()
}

func TestHTTPOptionsCheck(t *testing.T) {
	o := HTTPOptions{}
	if cfg, err := o.check(zap.NewNop()); err != nil || cfg != nil {
		t.Fatalf("defaults: %v %v", cfg, err)
	}
	if o.ReadTimeout != 30*time.Second || o.WriteTimeout != 60*time.Second || o.IdleTimeout != 120*time.Second || o.MaxStreamsPerKey != 16 || o.scheme() != "http" {
		t.Fatalf("defaults: %+v", o)
	}
	dir := t.TempDir()
	cert, key, _ := writeCert(t, dir, "server")
	for _, c := range []struct {
		o    HTTPOptions
		want string
	}{
		{HTTPOptions{TLSCertFile: cert}, "give both --tls-cert-file and --tls-key-file, or neither"},
		{HTTPOptions{TLSKeyFile: key}, "give both --tls-cert-file and --tls-key-file, or neither"},
		{HTTPOptions{TLSCertFile: cert, TLSKeyFile: filepath.Join(dir, "missing.pem")}, "loading --tls-cert-file"},
		{HTTPOptions{TLSCertFile: key, TLSKeyFile: cert}, "loading --tls-cert-file"},
		{HTTPOptions{ReadTimeout: -time.Second}, "--http-read-timeout must be positive"},
		{HTTPOptions{WriteTimeout: -time.Second}, "--http-write-timeout must be positive"},
		{HTTPOptions{IdleTimeout: -time.Second}, "--http-idle-timeout must be positive"},
		{HTTPOptions{MaxStreamsPerKey: -1}, "--max-streams-per-key must be at least 1"},
	} {
		if _, err := c.o.check(zap.NewNop()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	o = HTTPOptions{TLSCertFile: cert, TLSKeyFile: key}
	if cfg, err := o.check(zap.NewNop()); err != nil || cfg == nil || cfg.MinVersion != tls.VersionTLS12 || o.scheme() != "https" {
		t.Fatalf("TLS: %v %v", cfg, err)
	}
	// The commands refuse half a pair before anything starts.
	if err := RunServer(t.Context(), ServerOptions{KeysFile: "k", Store: "s", HTTP: HTTPOptions{TLSKeyFile: key}}); err == nil || !strings.Contains(err.Error(), "--tls-cert-file") {
		t.Fatalf("server: %v", err)
	}
	if err := RunDev(t.Context(), DevOptions{DataDir: t.TempDir(), HTTP: HTTPOptions{TLSCertFile: cert}}); err == nil || !strings.Contains(err.Error(), "--tls-key-file") {
		t.Fatalf("dev: %v", err)
	}
}

// TestServeAPIOverTLS: with a certificate, the API and /mcp are served
// over TLS (HTTP/2 and HTTP/1.1), and only over TLS.
func TestServeAPIOverTLS(t *testing.T) {
	cert, key, pool := writeCert(t, t.TempDir(), "server")
	addr := startAPI(t, testAPI(t, 0), HTTPOptions{TLSCertFile: cert, TLSKeyFile: key})
	base := "https://" + addr
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}}
	for name, client := range map[string]*http.Client{"HTTP/2.0": h2, "HTTP/1.1": h1} {
		req, _ := http.NewRequest("GET", base+"/api/v1/tasks", nil)
		req.Header.Set("Authorization", "UserKey "+testAdminKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Proto != name || resp.TLS == nil {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, resp.Proto)
		}
	}
	// /mcp: a tool call (which calls the API in process) answers over TLS.
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tasks","arguments":{}}}`
	req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "UserKey "+testAdminKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"result"`) || strings.Contains(string(b), `"isError":true`) {
		t.Fatalf("mcp: %d %s", resp.StatusCode, b)
	}
	// Plain HTTP to the TLS port gets nothing from the API.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || strings.Contains(string(b), "ok") {
			t.Fatalf("plain HTTP: %d %s", resp.StatusCode, b)
		}
	}
	// A client that does not trust the certificate does not connect.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

// TestTLSCertificateReloaded: new certificate files are served without a
// restart; files that do not load leave the previous pair in service.
func TestTLSCertificateReloaded(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := writeCert(t, dir, "one")
	kp, err := newKeyPair(cert, key, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	first, _ := kp.get(nil)
	cert2, key2, _ := writeCert(t, dir, "two")
	for _, f := range [][2]string{{cert2, cert}, {key2, key}} {
		b, _ := os.ReadFile(f[0])
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Minute)
		_ = os.Chtimes(f[1], future, future)
	}
	if got, _ := kp.get(nil); got != first {
		t.Fatal("reloaded before the check interval")
	}
	kp.checked = time.Now().Add(-certCheckEvery)
	second, _ := kp.get(nil)
	if !bytes.Equal(second.Certificate[0], mustRead(t, cert2)) {
		t.Fatal("the new certificate is not served")
	}
	// A half-written pair: the previous one stays.
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Minute)
	_ = os.Chtimes(key, later, later)
	kp.checked = time.Now().Add(-certCheckEvery)
	if got, _ := kp.get(nil); got != second {
		t.Fatal("a pair that does not load replaced the served one")
	}
}

func mustRead(t *testing.T, pemFile string) []byte {
	t.Helper()
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	return blk.Bytes
}

// TestSlowClientsAreCut: with a short read timeout, a client that sends its
// header, or its body, a byte at a time loses its connection within the
// timeout; a state upload, which the state backend gives longer, still
// arrives and is answered (past the read and the write timeout); an idle
// keep-alive connection is closed after the idle timeout.
func TestSlowClientsAreCut(t *testing.T) {
	const timeout = 500 * time.Millisecond
	api := testAPI(t, timeout)
	addr := startAPI(t, api, HTTPOptions{ReadTimeout: timeout, WriteTimeout: timeout, IdleTimeout: 2 * timeout})

	// trickle sends head at once, then body a byte every 50ms, and returns
	// how long the server kept the connection and what it answered.
	trickle := func(head, body string, slowHead bool) (time.Duration, string) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		closed := make(chan struct{})
		var answer []byte
		go func() {
			answer, _ = io.ReadAll(conn) // until the server closes
			close(closed)
		}()
		send := func(s string, slow bool) bool {
			if !slow {
				_, err := conn.Write([]byte(s))
				return err == nil
			}
			for i := 0; i < len(s); i++ {
				select {
				case <-closed:
					return false
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{s[i]}); err != nil {
					return false
				}
			}
			return true
		}
		if send(head, slowHead) {
			send(body, true)
		}
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			t.Fatal("the server kept a slow connection 20 s")
		}
		return time.Since(start), string(answer)
	}

	body := strings.Repeat("x", 400) // 20 s at a byte every 50 ms
	head := "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: UserKey " + testAdminKey +
		fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body))
	took, answer := trickle(head, body, false)
	if took > 3*timeout {
		t.Fatalf("a slow body held the connection %v (read timeout %v)", took, timeout)
	}
	t.Logf("slow body: cut after %v, answer %q", took, firstLine(answer))
	took, _ = trickle(head, body, true)
	if took > 3*timeout {
		t.Fatalf("a slow header held the connection %v (read timeout %v)", took, timeout)
	}

	// The state backend's uploads get longer: a document sent over 3 read
	// timeouts arrives.
	doc := `{"version":4,"serial":1,"lineage":"l","resources":[]}`
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := fmt.Sprintf("POST /api/v1/state/default/ws HTTP/1.1\r\nHost: x\r\nAuthorization: UserKey %s\r\nContent-Length: %d\r\n\r\n", testAdminKey, len(doc))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	step := 3 * timeout / time.Duration(len(doc))
	for i := 0; i < len(doc); i++ {
		time.Sleep(step)
		if _, err := conn.Write([]byte{doc[i]}); err != nil {
			t.Fatalf("state upload cut after %d bytes: %v", i, err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("slow state upload: %d", resp.StatusCode)
	}

	// An idle keep-alive connection is closed after the idle timeout.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := conn2.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn2)
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	start := time.Now()
	_ = conn2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %v", err)
	}
	if took := time.Since(start); took < timeout || took > 4*timeout {
		t.Fatalf("idle connection closed after %v (idle timeout %v)", took, 2*timeout)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// TestBannerShowsTLS: with TLS the banner's URLs are https.
func TestBannerShowsTLS(t *testing.T) {
	var b bytes.Buffer
	printBanner(&b, DevAddresses{HTTP: "127.0.0.1:8443", URL: "https://127.0.0.1:8443", Temporal: "127.0.0.1:7233", APIKey: "k"}, "/d", []string{"local"}, false, false, true)
	out := b.String()
	for _, want := range []string{"API:          https://127.0.0.1:8443/api/v1/tasks", "MCP:          https://127.0.0.1:8443/mcp",
		"TERRATASK_ADDRESS=https://127.0.0.1:8443", `" https://127.0.0.1:8443/api/v1/tasks`} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "http://127.0.0.1:8443") {
		t.Errorf("banner shows http:\n%s", out)
	}
}

// TestStateOnly: dev's plain-HTTP listener for its runners serves the
// state routes and nothing else.
func TestStateOnly(t *testing.T) {
	api := testAPI(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveState(ln, api, zap.NewNop(), HTTPOptions{ReadTimeout: time.Second, IdleTimeout: time.Second})
	t.Cleanup(func() { _ = shutdownHTTP(srv) })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for path, want := range map[string]int{"/api/v1/state/default/ws": 204, "/api/v1/tasks": 404, "/mcp": 404, "/healthz": 404} {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+path, nil)
		req.Header.Set("Authorization", "UserKey "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
