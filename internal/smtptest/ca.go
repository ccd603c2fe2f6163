package smtptest

import (
	"crypto"
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
	"time"
)

// CA is a test certificate authority made in memory. Its certificate is
// the only one in Pool, so a client that verifies against Pool trusts
// exactly the leaves this CA issued.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key signs the leaves.
	Key crypto.Signer
	// Pool contains only this CA.
	Pool *x509.CertPool
	// PEM is the CA certificate, PEM encoded (what --ca-file reads).
	PEM []byte
}

// testCAName is the common name of the CA made by NewCA.
const testCAName = "gmailtls test CA"

// NewCA makes an ECDSA P-256 CA named "gmailtls test CA", valid from an
// hour ago for ten years.
func NewCA() (*CA, error) {
	now := time.Now()
	return newNamedCA(testCAName, now.Add(-time.Hour), now.AddDate(10, 0, 0))
}

// newNamedCA makes a self-signed ECDSA P-256 CA with the given common name.
func newNamedCA(cn string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("smtptest: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"gmailtls tests"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("smtptest: create CA certificate %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("smtptest: parse CA certificate %q: %w", cn, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		Cert: cert,
		Key:  key,
		Pool: pool,
		PEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// Issue makes a server certificate for the given DNS names and IP literals,
// signed by the CA and valid from notBefore to notAfter. The first name is
// also the subject common name. The returned certificate carries only the
// leaf; the CA is expected to be in the client's roots.
func (ca *CA) Issue(names []string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	return issue(names, notBefore, notAfter, ca.Cert, ca.Key)
}

// WritePEM writes the CA certificate, PEM encoded, to path (mode 0644), for
// tools that take a --ca-file.
func (ca *CA) WritePEM(path string) error {
	if err := os.WriteFile(path, ca.PEM, 0o644); err != nil {
		return fmt.Errorf("smtptest: write CA certificate: %w", err)
	}
	return nil
}

// selfSigned makes a leaf for names that is signed by its own key: no CA
// vouches for it.
func selfSigned(names []string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	return issue(names, notBefore, notAfter, nil, nil)
}

// issue makes a leaf signed by parent/parentKey, or self-signed when parent
// is nil.
func issue(names []string, notBefore, notAfter time.Time, parent *x509.Certificate, parentKey crypto.Signer) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("smtptest: issue a certificate: no names given")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("smtptest: generate leaf key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	var signer crypto.Signer = key
	if parent == nil {
		parent = tmpl
	} else {
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("smtptest: create certificate for %v: %w", names, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("smtptest: parse certificate for %v: %w", names, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// newSerial returns a random 128-bit certificate serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("smtptest: certificate serial: %w", err)
	}
	return n, nil
}
