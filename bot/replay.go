package bot

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// HTTP mode's defence against forged and replayed requests. Slack signs
// every request with the app's signing secret over a timestamp and the
// raw body (X-Slack-Signature: v0=hex(HMAC-SHA256(secret,
// "v0:"+timestamp+":"+body))). A request is run only when its signature
// verifies, its timestamp is within signatureWindow of the bot's clock,
// and the signature was never accepted before: the replay memory holds
// the digest of every accepted signature until its timestamp leaves the
// window, after which the request is refused as stale anyway. Slack
// retries a request it got no timely answer to with a new signature and
// X-Slack-Retry-Num; the memory also holds the digest of each accepted
// body, so a retry of a request already accepted is answered 200 and not
// run again.

// signatureWindow is how far a request's timestamp may be from the bot's
// clock, either way: Slack's 5 minutes.
const signatureWindow = 5 * time.Minute

// retryMemory is how long the body of an accepted request is remembered
// for Slack's retries (Slack retries within minutes).
const retryMemory = time.Hour

// replayTimeout bounds recording a request in the replay memory.
const replayTimeout = 2 * time.Second

// Headers of a signed Slack request.
const (
	headerSignature = "X-Slack-Signature"
	headerTimestamp = "X-Slack-Request-Timestamp"
	headerRetryNum  = "X-Slack-Retry-Num"
)

// ReplayMemory remembers the signed requests HTTP mode accepted and the
// Socket Mode envelopes the bot handled. RememberSlackRequest records keys
// and reports, key by key, whether each was recorded before and has not
// expired at now. *storage.Store implements it in the database, so that
// the memory survives a restart and is shared by the replicas.
type ReplayMemory interface {
	RememberSlackRequest(ctx context.Context, now time.Time, keys ...storage.SeenKey) (seen []bool, err error)
}

// signedRequest is what the headers of a signed request say.
type signedRequest struct {
	rawTS string
	ts    time.Time
	mac   []byte
}

// errSignature words a request refused for its signature.
type errSignature string

func (e errSignature) Error() string { return string(e) }

// signatureHeaders reads and checks the signature headers at now, before
// the body is read: both present, a v0 signature of 32 bytes, a timestamp
// of whole seconds within signatureWindow of now.
func signatureHeaders(h http.Header, now time.Time) (signedRequest, error) {
	sig, rawTS := h.Get(headerSignature), h.Get(headerTimestamp)
	if sig == "" || rawTS == "" {
		return signedRequest{}, errSignature("the request is not signed (no X-Slack-Signature or X-Slack-Request-Timestamp)")
	}
	if len(rawTS) > 12 || !allDigits(rawTS) {
		return signedRequest{}, errSignature("X-Slack-Request-Timestamp is not a Unix time in seconds")
	}
	secs, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil {
		return signedRequest{}, errSignature("X-Slack-Request-Timestamp is not a Unix time in seconds")
	}
	ts := time.Unix(secs, 0)
	if d := now.Sub(ts).Abs(); d > signatureWindow {
		return signedRequest{}, errSignature(fmt.Sprintf("the request was signed %s from the bot's clock, more than 5 minutes: a stale or replayed request, or a clock that is off (check NTP)", d.Round(time.Second)))
	}
	hexMAC, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return signedRequest{}, errSignature("X-Slack-Signature is not a v0 signature")
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil || len(mac) != sha256.Size {
		return signedRequest{}, errSignature("X-Slack-Signature is not a v0 signature")
	}
	return signedRequest{rawTS: rawTS, ts: ts, mac: mac}, nil
}

// verify reports whether sr's signature is the signing secret's over body,
// in constant time.
func (sr signedRequest) verify(secret string, body []byte) bool {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + sr.rawTS + ":"))
	m.Write(body)
	return hmac.Equal(m.Sum(nil), sr.mac)
}

// keys are the replay memory's keys of an accepted request: the digest of
// its signature, kept until its timestamp has left the window, and the
// digest of its body, kept for Slack's retries. The signature's digest is
// taken over the decoded MAC, so that a replay spelling the same
// signature in other hex letters is the same key.
func (sr signedRequest) keys(body []byte, now time.Time) []storage.SeenKey {
	return []storage.SeenKey{
		{Digest: digest("slack-signature", sr.mac), Expires: sr.ts.Add(signatureWindow + time.Second)},
		{Digest: digest("slack-body", body), Expires: now.Add(retryMemory)},
	}
}

func digest(kind string, data []byte) []byte {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// maxMemoryKeys bounds memoryReplay: minutes of requests.
const maxMemoryKeys = 200_000

// errReplayFull is memoryReplay refusing to grow further.
var errReplayFull = errors.New("the replay memory is full (more than 100,000 Slack requests within minutes)")

// memoryReplay is the replay memory of a bot without a database (tests,
// or a Config without Replay): it forgets everything at a restart, so the
// bot then refuses requests signed before it started.
type memoryReplay struct {
	mu   sync.Mutex
	keys map[string]time.Time
}

func newMemoryReplay() *memoryReplay { return &memoryReplay{keys: map[string]time.Time{}} }

// RememberSlackRequest implements ReplayMemory.
func (m *memoryReplay) RememberSlackRequest(_ context.Context, now time.Time, keys ...storage.SeenKey) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.keys)+len(keys) > maxMemoryKeys {
		for k, exp := range m.keys {
			if !exp.After(now) {
				delete(m.keys, k)
			}
		}
		if len(m.keys)+len(keys) > maxMemoryKeys {
			return nil, errReplayFull
		}
	}
	seen := make([]bool, len(keys))
	for i, k := range keys {
		id := string(k.Digest)
		exp, ok := m.keys[id]
		seen[i] = ok && exp.After(now)
		if !seen[i] || k.Expires.After(exp) {
			m.keys[id] = k.Expires
		}
	}
	return seen, nil
}
