package bot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// Signature modes of FuzzHTTPHandler.
const (
	fuzzSigValid      = iota // signed with the signing secret
	fuzzSigValidUpper        // the same signature in upper-case hex
	fuzzSigWrong             // signed with another secret
	fuzzSigText              // the fuzzer's own header values
	fuzzSigNone              // no signature headers
	fuzzSigModes
)

// FuzzHTTPHandler sends arbitrary requests (method, path, content type,
// signature headers, timestamp, retry header, body) to HTTP mode's
// handler. It checks that the handler
// never panics and that no request runs a command (reaches
// Handler.Acknowledge) unless it is a POST to a Request URL whose
// signature is the signing secret's, within 5 minutes of the bot's clock
// and never accepted before; that the same request sent again, in other
// hex letters, or as a retry Slack signed anew, never runs again.
//
// Run it with a bound on minimisation, since SQLite's and the scheduler's
// own coverage varies from one run of an input to the next, which keeps
// an unbounded minimisation busy:
//
//	go test ./bot -run '^$' -fuzz FuzzHTTPHandler -fuzztime 60s -fuzzminimizetime 200x
func FuzzHTTPHandler(f *testing.F) {
	start := time.Date(2026, time.May, 1, 12, 0, 0, 0, time.UTC)
	clk := manualclock.New(start)
	st, err := storage.Open(context.Background(), filepath.Join(f.TempDir(), "gmailtls.db"), storage.Options{Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	// The handler answers every request in full in the acknowledgement,
	// so that nothing is queued or delivered: the fuzzer counts what
	// reaches it. Slack is a stand-in all the same.
	h := &fakeHandler{ackFn: func(message.Request) (message.Response, bool) { return message.Response{}, false }}
	fake := slackfake.New(slackfake.Options{})
	f.Cleanup(fake.Close)
	b, err := New(Config{
		Mode: ModeHTTP, BotToken: slackfake.DefaultBotToken, SigningSecret: testSecret,
		Listen: "127.0.0.1:0", Replay: st, Now: clk.Now, Logger: slog.New(slog.DiscardHandler),
		APIURL: fake.APIURL(), APIRetries: -1, ResponseURLHosts: []string{fakeHost(fake)},
	}, h)
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	handler := b.httpHandler(ctx)

	slash := slackfake.Slash{Text: "check relay-2"}.Form().Encode()
	// The harness sees a command run.
	signed := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	signed.Set(headerTimestamp, strconv.FormatInt(start.Unix(), 10))
	signed.Set(headerSignature, fuzzSign(testSecret, start, []byte(slash)))
	if !fuzzSend(ctx, b, h, handler, http.MethodPost, PathCommands, signed, []byte(slash)) {
		f.Fatal("a signed slash command did not run")
	}

	press := slackfake.Action{ActionID: message.ActionRerun, Value: "relay-2"}.Form().Encode()
	f.Add("POST", uint8(0), "application/x-www-form-urlencoded", int32(0), uint8(fuzzSigValid), "", "", "", []byte(slash))
	f.Add("POST", uint8(1), "application/x-www-form-urlencoded", int32(-299), uint8(fuzzSigValidUpper), "", "", "1", []byte(press))
	f.Add("POST", uint8(0), "application/x-www-form-urlencoded", int32(301), uint8(fuzzSigValid), "", "", "", []byte(slash))
	f.Add("POST", uint8(1), "application/x-www-form-urlencoded", int32(0), uint8(fuzzSigWrong), "", "", "", []byte(press))
	f.Add("POST", uint8(0), "text/plain", int32(0), uint8(fuzzSigText), "v0=00", "+1777636800", "x", []byte("command=%2Fgmailtls&text=pause"))
	f.Add("GET", uint8(0), "", int32(0), uint8(fuzzSigNone), "", "", "", []byte(nil))
	f.Add("POST", uint8(2), "application/json", int32(5), uint8(fuzzSigValid), "", "", "", []byte(`{"payload":1}`))
	f.Add("POST", uint8(1), "application/x-www-form-urlencoded", int32(0), uint8(fuzzSigValid), "", "", "", []byte("payload="+url.QueryEscape(`{"type":"block_actions","actions":[{"action_id":"a","block_id":"b"},{"action_id":"c","block_id":"d"}]}`)))

	f.Fuzz(func(t *testing.T, method string, target uint8, contentType string, skew int32, mode uint8, sigText, tsText, retryNum string, body []byte) {
		// Every input starts two hours after the last, so that nothing
		// an earlier input left in the replay memory (5 minutes of
		// signatures, an hour of bodies) is still there: an input runs
		// the same way each time the fuzzer tries it, and the replays
		// are the input's own, below.
		clk.Advance(2 * time.Hour)
		now := clk.Now()
		accepted := map[string]bool{} // MACs the bot must have recorded
		paths := []string{PathCommands, PathInteractivity, "/slack/events", PathCommands + "/", "/"}
		path := paths[int(target)%len(paths)]
		mode %= fuzzSigModes
		ts := now.Add(time.Duration(skew) * time.Second)
		sig := fuzzSign(testSecret, ts, body)
		header := http.Header{}
		if contentType != "" {
			header.Set("Content-Type", contentType)
		}
		switch mode {
		case fuzzSigValid:
		case fuzzSigValidUpper:
			sig = "v0=" + strings.ToUpper(strings.TrimPrefix(sig, "v0="))
		case fuzzSigWrong:
			sig = fuzzSign("another-secret-of-thirty-two-bytes", ts, body)
		}
		if mode != fuzzSigNone {
			header.Set(headerTimestamp, strconv.FormatInt(ts.Unix(), 10))
			header.Set(headerSignature, sig)
		}
		if mode == fuzzSigText {
			header.Set(headerTimestamp, tsText)
			header.Set(headerSignature, sigText)
		}
		if retryNum != "" {
			header.Set(headerRetryNum, retryNum)
		}
		mac := hex.EncodeToString(fuzzMAC(testSecret, ts, body))
		routed := method == http.MethodPost && (path == PathCommands || path == PathInteractivity)
		fresh := skew >= -300 && skew <= 300
		// valid: the bot must record the request in its replay memory
		// (whether or not it then runs anything).
		valid := routed && (mode == fuzzSigValid || mode == fuzzSigValidUpper) && fresh && len(body) <= maxBodyBytes
		mayRun := valid && !accepted[mac]

		send := func(hdr http.Header) (ran bool) { return fuzzSend(ctx, b, h, handler, method, path, hdr, body) }

		if send(header) && !mayRun {
			t.Fatalf("a request ran without a valid, fresh, unseen signature: %q %s mode %d skew %d s, accepted before %v", method, path, mode, skew, accepted[mac])
		}
		if valid {
			accepted[mac] = true
		}
		if send(header) {
			t.Fatalf("the same request sent again ran: %q %s mode %d", method, path, mode)
		}
		if hexSig, ok := strings.CutPrefix(header.Get(headerSignature), "v0="); ok {
			upper := header.Clone()
			upper.Set(headerSignature, "v0="+strings.ToUpper(hexSig))
			if send(upper) {
				t.Fatalf("the same request in upper-case hex ran: %q %s mode %d", method, path, mode)
			}
		}
		if valid {
			// Slack's retry of the same body: signed anew a second
			// later, with X-Slack-Retry-Num.
			ts2 := ts.Add(time.Second)
			retry := header.Clone()
			retry.Set(headerTimestamp, strconv.FormatInt(ts2.Unix(), 10))
			retry.Set(headerSignature, fuzzSign(testSecret, ts2, body))
			retry.Set(headerRetryNum, "1")
			if send(retry) {
				t.Fatalf("a retry of an accepted request ran: %q %s", method, path)
			}
			if skew+1 <= 300 {
				accepted[hex.EncodeToString(fuzzMAC(testSecret, ts2, body))] = true
			}
		}
	})
}

// fuzzSend serves one request and reports whether it reached the handler.
func fuzzSend(ctx context.Context, b *Bot, h *fakeHandler, handler http.Handler, method, path string, hdr http.Header, body []byte) (ran bool) {
	before, _ := h.calls()
	req := &http.Request{
		Method: method, URL: &url.URL{Path: path}, Host: "bot.test.example", RequestURI: path,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr.Clone(), Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		RemoteAddr: "127.0.0.1:40000",
	}
	handler.ServeHTTP(httptest.NewRecorder(), req.WithContext(ctx))
	b.acks.Wait()
	after, _ := h.calls()
	return len(after) > len(before)
}

func fuzzMAC(secret string, ts time.Time, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%d:", ts.Unix())
	m.Write(body)
	return m.Sum(nil)
}

func fuzzSign(secret string, ts time.Time, body []byte) string {
	return "v0=" + hex.EncodeToString(fuzzMAC(secret, ts, body))
}
