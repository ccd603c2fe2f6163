package probe

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// verifyChain verifies the peer's chain for name at now, against extra
// first when set, then against roots (nil: the system roots). The error,
// if any, is that of the roots. A chain that cache (may be nil) has seen
// verify for name, and whose certificates are all valid at now, is
// accepted without verifying it again.
func verifyChain(cs tls.ConnectionState, name string, roots, extra *x509.CertPool, now time.Time, cache *chainCache) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	var key []byte
	if cache != nil {
		key = chainKey(name, cs.PeerCertificates)
		if cache.valid(key, now) {
			return nil
		}
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		DNSName:       name,
		Roots:         extra,
		Intermediates: inter,
		CurrentTime:   now,
	}
	leaf := cs.PeerCertificates[0]
	if extra != nil {
		if chains, err := leaf.Verify(opts); err == nil {
			cache.add(key, chains[0])
			return nil
		}
	}
	opts.Roots = roots
	chains, err := leaf.Verify(opts)
	if err != nil {
		return err
	}
	cache.add(key, chains[0])
	return nil
}

// chainCache remembers the chains that verified during one run. The probes
// of a run meet the same certificate again and again (every address of an
// MX host, every source address, usually every MX host of a domain), and
// verifying it costs a chain build and a signature check each time.
//
// An entry stands for exactly the inputs of one verification: the name and
// the DER of every certificate the server sent, in order; the roots are
// those of the run and do not change during it. The only other input of
// x509 verification is the time, so an entry keeps the validity window of
// the chain that verified, and a hit outside it verifies again. Failures
// are never cached: they are verified each time, for their exact error.
// Only the chain is cached; crypto/tls still checks, in every handshake,
// the server's signature that proves it holds the leaf's private key.
type chainCache struct {
	mu sync.Mutex
	ok map[string]window
}

// window is the time span in which every certificate of a chain is valid.
type window struct{ notBefore, notAfter time.Time }

// maxCachedChains bounds a run's cache: servers that each present a
// different chain cannot make it grow without end.
const maxCachedChains = 64

func newChainCache() *chainCache {
	return &chainCache{ok: make(map[string]window)}
}

// chainKey is the cache key of a verification of certs for name.
func chainKey(name string, certs []*x509.Certificate) []byte {
	n := 4 + len(name)
	for _, c := range certs {
		n += 4 + len(c.Raw)
	}
	key := make([]byte, 0, n)
	key = binary.BigEndian.AppendUint32(key, uint32(len(name)))
	key = append(key, name...)
	for _, c := range certs {
		key = binary.BigEndian.AppendUint32(key, uint32(len(c.Raw)))
		key = append(key, c.Raw...)
	}
	return key
}

// valid reports whether the chain of key verified before and all its
// certificates are valid at now, as x509 checks them.
func (c *chainCache) valid(key []byte, now time.Time) bool {
	c.mu.Lock()
	w, ok := c.ok[string(key)]
	c.mu.Unlock()
	return ok && !now.Before(w.notBefore) && !now.After(w.notAfter)
}

// add records that the chain of key verified as chain (leaf to root). A
// nil cache records nothing.
func (c *chainCache) add(key []byte, chain []*x509.Certificate) {
	if c == nil || len(chain) == 0 {
		return
	}
	w := window{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, cert := range chain[1:] {
		if cert.NotBefore.After(w.notBefore) {
			w.notBefore = cert.NotBefore
		}
		if cert.NotAfter.Before(w.notAfter) {
			w.notAfter = cert.NotAfter
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ok) < maxCachedChains {
		c.ok[string(key)] = w
	}
}
