// Package devtls makes the certificates of terratask dev's embedded Temporal
// server: a CA of its own, a server certificate for the loopback addresses,
// and one client certificate. The frontend and the internal services accept
// only clients that present a certificate of that CA, so task code that
// reaches 127.0.0.1 gets nothing from Temporal (README, Isolation).
//
// The files live in one directory of the data dir (0700; keys 0600) and are
// made anew when missing, unreadable or within renewBefore of expiry. The CA
// key is kept, so a client certificate handed to the temporal CLI or the
// Web UI stays valid across restarts.
package devtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DirName is the directory of the files in terratask dev's data dir.
const DirName = "temporal-tls"

// ServerName is the name clients verify the server certificate against.
const ServerName = "localhost"

// Lifetimes of the certificates, and how long before expiry they are
// renewed at a start.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 2 * 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// Files are the paths of the certificates and keys.
type Files struct {
	Dir                   string
	CA, CAKey             string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// FilesIn names the files in dir.
func FilesIn(dir string) Files {
	return Files{
		Dir: dir,
		CA:  filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
}

// Ensure returns the files in dir, making what is missing or about to
// expire. ips are added to the server certificate's addresses (the
// frontend's listen address when it is not loopback).
func Ensure(dir string, ips ...net.IP) (Files, error) {
	f := FilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("dev TLS: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return f, fmt.Errorf("dev TLS: %w", err)
	}
	ca, caKey, err := loadPair(f.CA, f.CAKey)
	if err != nil || !fresh(ca) {
		if ca, caKey, err = issue(nil, nil, "terratask dev CA", true, nil); err != nil {
			return f, err
		}
		if err := write(f.CA, f.CAKey, ca, caKey); err != nil {
			return f, err
		}
		// A new CA invalidates the old leaves.
		_ = os.Remove(f.ServerCert)
		_ = os.Remove(f.ClientCert)
	}
	all := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...)
	if srv, _, err := loadPair(f.ServerCert, f.ServerKey); err != nil || !fresh(srv) || !signedBy(srv, ca) || !covers(srv, all) {
		cert, key, err := issue(ca, caKey, "terratask dev Temporal", false, all)
		if err != nil {
			return f, err
		}
		if err := write(f.ServerCert, f.ServerKey, cert, key); err != nil {
			return f, err
		}
	}
	if cl, _, err := loadPair(f.ClientCert, f.ClientKey); err != nil || !fresh(cl) || !signedBy(cl, ca) {
		cert, key, err := issue(ca, caKey, "terratask dev client", false, nil)
		if err != nil {
			return f, err
		}
		if err := write(f.ClientCert, f.ClientKey, cert, key); err != nil {
			return f, err
		}
	}
	return f, nil
}

// ClientConfig is the TLS configuration of a Temporal client of the dev
// server: the client certificate, and the CA as the only root.
func (f Files) ClientConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("dev TLS: loading the client certificate: %w", err)
	}
	pool, err := f.Pool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: ServerName, MinVersion: tls.VersionTLS12}, nil
}

// Pool is a pool holding the CA.
func (f Files) Pool() (*x509.CertPool, error) {
	b, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("dev TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("dev TLS: the CA file holds no certificate")
	}
	return pool, nil
}

func fresh(c *x509.Certificate) bool { return time.Until(c.NotAfter) > renewBefore }

func signedBy(c, ca *x509.Certificate) bool { return c.CheckSignatureFrom(ca) == nil }

func covers(c *x509.Certificate, ips []net.IP) bool {
	for _, ip := range ips {
		if c.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return c.VerifyHostname(ServerName) == nil
}

// issue makes a certificate: self-signed for a CA (parent nil), else signed
// by parent; usable by servers and clients both (Temporal's internal
// services are each other's clients).
func issue(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool, ips []net.IP) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("dev TLS: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("dev TLS: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"terratask dev"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	signer, signerKey := tmpl, key
	if isCA {
		tmpl.NotAfter = now.Add(caLifetime)
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = nil
		tmpl.MaxPathLenZero = true
	} else {
		signer, signerKey = parent, parentKey
		if ips != nil {
			tmpl.IPAddresses = ips
			tmpl.DNSNames = []string{ServerName}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, fmt.Errorf("dev TLS: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("dev TLS: %w", err)
	}
	return cert, key, nil
}

func write(certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("dev TLS: %w", err)
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("dev TLS: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("dev TLS: %w", err)
	}
	return nil
}

func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}
