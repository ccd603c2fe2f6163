package relay

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

func TestSignKnownVector(t *testing.T) {
	// Computed independently: python3 hmac.new(b"topsecret",
	// b'v1:1700000000:POST:/v1/probe:{"mx":["a"]}', sha256).hexdigest()
	got := Sign([]byte("topsecret"), 1700000000, "POST", "/v1/probe", []byte(`{"mx":["a"]}`))
	want := "v1=d595493cbedc41f3a97197cb2c9a2c1d680159611475067312d1a7c6105b1b00"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	cur, prev := []byte("current-secret"), []byte("previous-secret")
	body := []byte(`{"family":"4"}`)
	ts := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	sig := func(secret []byte, d time.Duration) string {
		return Sign(secret, now.Add(d).Unix(), "POST", "/v1/probe", body)
	}
	tests := []struct {
		name    string
		secrets [][]byte
		ts, sig string
		method  string
		path    string
		body    []byte
		ok      bool
	}{
		{"current secret", [][]byte{cur, prev}, ts(0), sig(cur, 0), "POST", "/v1/probe", body, true},
		{"previous secret during rotation", [][]byte{cur, prev}, ts(0), sig(prev, 0), "POST", "/v1/probe", body, true},
		{"previous secret after rotation", [][]byte{cur}, ts(0), sig(prev, 0), "POST", "/v1/probe", body, false},
		{"empty secret never matches", [][]byte{{}}, ts(0), Sign(nil, now.Unix(), "POST", "/v1/probe", body), "POST", "/v1/probe", body, false},
		{"no secrets", nil, ts(0), sig(cur, 0), "POST", "/v1/probe", body, false},
		{"wrong secret", [][]byte{cur}, ts(0), sig([]byte("guess"), 0), "POST", "/v1/probe", body, false},
		{"body changed", [][]byte{cur}, ts(0), sig(cur, 0), "POST", "/v1/probe", []byte(`{"family":"6"}`), false},
		{"path changed", [][]byte{cur}, ts(0), sig(cur, 0), "POST", "/v1/info", body, false},
		{"method changed", [][]byte{cur}, ts(0), sig(cur, 0), "GET", "/v1/probe", body, false},
		{"4m59s behind", [][]byte{cur}, ts(-299 * time.Second), sig(cur, -299*time.Second), "POST", "/v1/probe", body, true},
		{"5m ahead", [][]byte{cur}, ts(5 * time.Minute), sig(cur, 5*time.Minute), "POST", "/v1/probe", body, true},
		{"6m behind", [][]byte{cur}, ts(-6 * time.Minute), sig(cur, -6*time.Minute), "POST", "/v1/probe", body, false},
		{"6m ahead", [][]byte{cur}, ts(6 * time.Minute), sig(cur, 6*time.Minute), "POST", "/v1/probe", body, false},
		{"missing timestamp", [][]byte{cur}, "", sig(cur, 0), "POST", "/v1/probe", body, false},
		{"missing signature", [][]byte{cur}, ts(0), "", "POST", "/v1/probe", body, false},
		{"no v1 prefix", [][]byte{cur}, ts(0), sig(cur, 0)[3:], "POST", "/v1/probe", body, false},
		{"v2 prefix", [][]byte{cur}, ts(0), "v2=" + sig(cur, 0)[3:], "POST", "/v1/probe", body, false},
		{"short signature", [][]byte{cur}, ts(0), sig(cur, 0)[:40], "POST", "/v1/probe", body, false},
		{"not hex", [][]byte{cur}, ts(0), "v1=" + fmt.Sprintf("%064d", 0)[:63] + "g", "POST", "/v1/probe", body, false},
		{"timestamp with sign", [][]byte{cur}, "+" + ts(0), sig(cur, 0), "POST", "/v1/probe", body, false},
		{"timestamp in ms", [][]byte{cur}, ts(0) + "000", sig(cur, 0), "POST", "/v1/probe", body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secrets, tt.ts, tt.sig, tt.method, tt.path, tt.body, now)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrSignature) {
				t.Errorf("error %v does not wrap ErrSignature", err)
			}
		})
	}
}

func TestReplayCache(t *testing.T) {
	c := newReplayCache(2)
	now := time.Unix(1700000000, 0)
	exp := now.Add(MaxSkew)
	if err := c.check("a", exp, now); err != nil {
		t.Fatal(err)
	}
	if err := c.check("a", exp, now.Add(time.Minute)); err == nil {
		t.Fatal("replay within the window accepted")
	}
	if err := c.check("b", exp, now); err != nil {
		t.Fatal(err)
	}
	if err := c.check("c", exp, now); !errors.Is(err, errReplayFull) {
		t.Fatalf("full cache: %v", err)
	}
	// Once the window has passed, entries expire and make room.
	later := exp.Add(time.Second)
	if err := c.check("c", later.Add(MaxSkew), later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if len(c.seen) != 1 {
		t.Errorf("expired entries kept: %d", len(c.seen))
	}
}

func TestAgentTimestampsIncrease(t *testing.T) {
	now := time.Unix(1700000000, 0)
	a := NewAgent("r", "http://127.0.0.1:1", []byte("s"), nil, 0, func() time.Time { return now })
	seen := map[int64]bool{}
	for range 10 {
		ts := a.timestamp()
		if seen[ts] {
			t.Fatalf("timestamp %d reused", ts)
		}
		seen[ts] = true
	}
	// It never runs more than a minute ahead of the clock.
	for range 100 {
		if ts := a.timestamp(); ts > now.Unix()+60 {
			t.Fatalf("timestamp %d too far ahead", ts)
		}
	}
}
