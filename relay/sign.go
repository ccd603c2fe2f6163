package relay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of a signed request.
const (
	HeaderTimestamp = "X-Gmailtls-Timestamp"
	HeaderSignature = "X-Gmailtls-Signature"
)

// MaxSkew is how far a request's timestamp may be from the agent's clock,
// either way.
const MaxSkew = 5 * time.Minute

// Sign returns the X-Gmailtls-Signature value for a request:
// "v1=" + hex(HMAC-SHA256(secret, "v1:"+ts+":"+method+":"+path+":"+body)).
func Sign(secret []byte, ts int64, method, path string, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, ts, method, path, body))
}

func mac(secret []byte, ts int64, method, path string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("v1:"))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte(":"))
	m.Write([]byte(method))
	m.Write([]byte(":"))
	m.Write([]byte(path))
	m.Write([]byte(":"))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a request's timestamp and signature headers against every
// accepted secret (the current one and, during a rotation, the previous
// one). It fails when either header is missing or malformed, when the
// timestamp is more than MaxSkew away from now either way, or when no secret
// produces the signature. The comparison is constant-time. Verify does not
// detect replays; the server keeps a replay cache for that.
func Verify(secrets [][]byte, tsHeader, sigHeader, method, path string, body []byte, now time.Time) error {
	if tsHeader == "" || sigHeader == "" {
		return fmt.Errorf("%w: missing %s or %s header", ErrSignature, HeaderTimestamp, HeaderSignature)
	}
	ts, err := parseTimestamp(tsHeader)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > MaxSkew || skew < -MaxSkew {
		return fmt.Errorf("%w: timestamp is %s away from the agent's clock (at most %s allowed): check NTP on both hosts",
			ErrSignature, skew.Round(time.Second), MaxSkew)
	}
	hexSig, ok := strings.CutPrefix(sigHeader, "v1=")
	if !ok {
		return fmt.Errorf("%w: signature must start with \"v1=\"", ErrSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: signature is not 64 hex digits", ErrSignature)
	}
	match := 0
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		if hmac.Equal(got, mac(s, ts, method, path, body)) {
			match = 1
		}
	}
	if match == 0 {
		return fmt.Errorf("%w: signature does not match (wrong secret?)", ErrSignature)
	}
	return nil
}

func parseTimestamp(s string) (int64, error) {
	if len(s) == 0 || len(s) > 12 {
		return 0, fmt.Errorf("timestamp %q is not unix seconds", truncate(s, 20))
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("timestamp %q is not unix seconds", truncate(s, 20))
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
