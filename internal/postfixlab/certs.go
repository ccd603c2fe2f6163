package postfixlab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// certFiles are the PEM files of one certificate: the chain (leaf first)
// and the private key.
type certFiles struct{ cert, key string }

// labCerts are the certificate files the listeners serve.
type labCerts struct {
	ok, expired, wrongName, untrusted certFiles
	// missing names files that do not exist (StartTLS454).
	missing certFiles
}

// inspectionCAName is the common name of the CA of UntrustedCA's chain.
const inspectionCAName = "Corp TLS Inspection CA"

// writeCerts issues the leaves of every TLS kind and writes them, with the
// CA certificate (caFile), into dir.
func writeCerts(dir string, ca *smtptest.CA, hostname, caFile string) (labCerts, error) {
	now := time.Now()
	var lc labCerts
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		return lc, fmt.Errorf("postfixlab: write the CA file: %w", err)
	}
	corp, err := newInspectionCA(now)
	if err != nil {
		return lc, err
	}
	for _, c := range []struct {
		name      string
		dst       *certFiles
		ca        *smtptest.CA
		names     []string
		from, to  time.Time
		withChain bool
	}{
		{"ok", &lc.ok, ca, []string{hostname}, now.Add(-time.Hour), now.AddDate(1, 0, 0), false},
		{"expired", &lc.expired, ca, []string{hostname}, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), false},
		{"wrong-name", &lc.wrongName, ca, []string{"other.test.example"}, now.Add(-time.Hour), now.AddDate(1, 0, 0), false},
		// An intercepting middlebox sends its CA along with the forged leaf.
		{"untrusted", &lc.untrusted, corp, []string{hostname}, now.Add(-time.Hour), now.AddDate(1, 0, 0), true},
	} {
		leaf, err := c.ca.Issue(c.names, c.from, c.to)
		if err != nil {
			return lc, fmt.Errorf("postfixlab: issue the %s certificate: %w", c.name, err)
		}
		chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
		if c.withChain {
			chain = append(chain, c.ca.PEM...)
		}
		files := certFiles{cert: filepath.Join(dir, c.name+".pem"), key: filepath.Join(dir, c.name+".key")}
		if err := writeKeyPair(files, chain, leaf); err != nil {
			return lc, err
		}
		*c.dst = files
	}
	lc.missing = certFiles{cert: filepath.Join(dir, "missing.pem"), key: filepath.Join(dir, "missing.key")}
	return lc, nil
}

func writeKeyPair(files certFiles, chain []byte, leaf tls.Certificate) error {
	der, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		return fmt.Errorf("postfixlab: encode the key of %s: %w", files.cert, err)
	}
	if err := os.WriteFile(files.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("postfixlab: write %s: %w", files.key, err)
	}
	if err := os.WriteFile(files.cert, chain, 0o644); err != nil {
		return fmt.Errorf("postfixlab: write %s: %w", files.cert, err)
	}
	return nil
}

// newInspectionCA makes "Corp TLS Inspection CA", the CA a TLS-intercepting
// middlebox signs its forged leaves with.
func newInspectionCA(now time.Time) (*smtptest.CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("postfixlab: generate the inspection CA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("postfixlab: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: inspectionCAName, Organization: []string{"gmailtls tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("postfixlab: create the inspection CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("postfixlab: parse the inspection CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &smtptest.CA{
		Cert: cert, Key: key, Pool: pool,
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}
