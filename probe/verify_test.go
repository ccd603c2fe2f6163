package probe

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// TestChainCache checks that a run verifies a chain once and that a cached
// chain counts only for the same certificates, the same name and a time
// within the validity of every certificate of the chain.
func TestChainCache(t *testing.T) {
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	leafAt := func(notAfter time.Time) tls.ConnectionState {
		c, err := ca.Issue([]string{"mx.test.example"}, now.Add(-time.Hour), notAfter)
		if err != nil {
			t.Fatal(err)
		}
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	}
	good := leafAt(now.AddDate(1, 0, 0))
	other := leafAt(now.AddDate(1, 0, 0))
	empty := x509.NewCertPool() // trusts nothing: only a cache hit passes

	cache := newChainCache()
	if err := verifyChain(good, "mx.test.example", empty, nil, now, cache); err == nil {
		t.Fatal("a chain that does not verify passed")
	}
	if len(cache.ok) != 0 {
		t.Fatalf("a failed verification was cached: %d entries", len(cache.ok))
	}
	if err := verifyChain(good, "mx.test.example", ca.Pool, nil, now, cache); err != nil {
		t.Fatalf("good chain: %v", err)
	}
	if err := verifyChain(good, "mx.test.example", empty, nil, now.Add(time.Minute), cache); err != nil {
		t.Errorf("the verified chain was verified again: %v", err)
	}
	if err := verifyChain(good, "other.test.example", empty, nil, now, cache); err == nil {
		t.Error("a chain verified for one name was accepted for another")
	}
	if err := verifyChain(other, "mx.test.example", empty, nil, now, cache); err == nil {
		t.Error("a chain verified once made another leaf with the same name trusted")
	}
	for _, at := range []time.Time{now.Add(-2 * time.Hour), now.AddDate(2, 0, 0)} {
		if err := verifyChain(good, "mx.test.example", empty, nil, at, cache); err == nil {
			t.Errorf("the cached chain was accepted at %s, outside its validity", at)
		}
		if err := verifyChain(good, "mx.test.example", ca.Pool, nil, at, cache); err == nil {
			t.Errorf("the chain verified at %s, outside its validity", at)
		}
	}

	// The CA's own validity bounds the window too.
	short, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	shortCA := short.Cert // valid for ten years from an hour ago
	c, err := short.Issue([]string{"mx.test.example"}, now.Add(-time.Hour), now.AddDate(20, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	long := tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	if err := verifyChain(long, "mx.test.example", short.Pool, nil, now, cache); err != nil {
		t.Fatalf("leaf outliving its CA: %v", err)
	}
	if err := verifyChain(long, "mx.test.example", empty, nil, shortCA.NotAfter.Add(time.Hour), cache); err == nil {
		t.Error("the cached chain was accepted after its CA expired")
	}

	// A nil cache verifies every time.
	if err := verifyChain(good, "mx.test.example", empty, nil, now, nil); err == nil {
		t.Error("without a cache, a chain that does not verify passed")
	}
}

// TestChainCacheBound checks that hostile servers, each with its own
// chain, cannot grow a run's cache without end.
func TestChainCacheBound(t *testing.T) {
	cache := newChainCache()
	leaf := &x509.Certificate{NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<40, 0)}
	for i := range 3 * maxCachedChains {
		leaf.Raw = []byte{byte(i), byte(i >> 8)}
		cache.add(chainKey("mx.test.example", []*x509.Certificate{leaf}), []*x509.Certificate{leaf})
	}
	if len(cache.ok) != maxCachedChains {
		t.Errorf("cache holds %d chains, want %d", len(cache.ok), maxCachedChains)
	}
}
