package devtls

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
)

// Ensure makes a CA and leaves it alone afterwards; the server certificate
// verifies for the loopback addresses and the given ones, and the client's
// for client auth, against that CA only.
func TestEnsure(t *testing.T) {
	dir := t.TempDir()
	extra := net.ParseIP("10.1.2.3")
	f, err := Ensure(dir, extra)
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(f.CA)
	client1, _ := os.ReadFile(f.ClientCert)
	if _, err := Ensure(dir, extra); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(f.CA)
	client2, _ := os.ReadFile(f.ClientCert)
	if string(ca1) != string(ca2) || string(client1) != string(client2) {
		t.Fatal("a second Ensure replaced valid certificates")
	}
	for _, p := range []string{f.CAKey, f.ServerKey, f.ClientKey, f.CA} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", p, fi.Mode().Perm(), err)
		}
	}
	pool, err := f.Pool()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(srv.Certificate[0])
	for _, host := range []string{"127.0.0.1", "::1", ServerName, "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "example.com"}); err == nil {
		t.Error("the server certificate verified for example.com")
	}
	conf, err := f.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := x509.ParseCertificate(conf.Certificates[0].Certificate[0])
	if _, err := cl.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	// Another dev's CA does not accept this client.
	other, err := Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherPool, _ := other.Pool()
	if _, err := cl.Verify(x509.VerifyOptions{Roots: otherPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("another CA accepted the client certificate")
	}
	// A damaged CA is made anew, and the leaves with it.
	if err := os.WriteFile(f.CA, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, extra); err != nil {
		t.Fatal(err)
	}
	client3, _ := os.ReadFile(f.ClientCert)
	if string(client3) == string(client1) {
		t.Error("the client certificate of the old CA was kept")
	}
}
