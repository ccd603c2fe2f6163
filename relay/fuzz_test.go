package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/textproto"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

func FuzzDecodeProbeRequest(f *testing.F) {
	f.Add([]byte(`{"mx":["gmail-smtp-in.l.google.com"], "family":"any", "no_retry":false, "mta_stack":true}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"mx":["127.0.0.1:2525","[::1]:25"],"family":"6"}`))
	f.Add([]byte(`{"mx":null,"family":""}`))
	f.Add([]byte(`{"port":25}`))
	f.Add([]byte(`{"mx":["a"]} {"mx":["b"]}`))
	f.Add([]byte(`{"mx":["a b"]}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		opts, err := decodeProbeRequest(body)
		if err != nil {
			if !errors.Is(err, ErrOptions) {
				t.Fatalf("error %v does not wrap ErrOptions", err)
			}
			return
		}
		if !ValidFamily(opts.Family) || len(opts.MX) > maxRequestMX {
			t.Fatalf("accepted %+v", opts)
		}
		for _, mx := range opts.MX {
			if mx == "" || len(mx) > 261 {
				t.Fatalf("accepted MX %q", mx)
			}
		}
		// What was accepted survives a round trip unchanged.
		b, err := json.Marshal(opts)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeProbeRequest(b)
		if err != nil || !reflect.DeepEqual(normOpts(back), normOpts(opts)) {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", opts, b, back, err)
		}
	})
}

func normOpts(o Options) Options {
	if len(o.MX) == 0 {
		o.MX = nil
	}
	return o
}

func TestDecodeProbeRequest(t *testing.T) {
	opts, err := decodeProbeRequest([]byte(`{"mx":["gmail-smtp-in.l.google.com"], "family":"any", "no_retry":true, "mta_stack":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Options{MX: []string{"gmail-smtp-in.l.google.com"}, Family: "any", NoRetry: true, MTAStack: true}
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("%+v", opts)
	}
	for _, bad := range []string{`{"port":25}`, `{"mx":"a"}`, `{"mx":["a"]}{}`, `{"family":"ipv6"}`, `{"mx":[""]}`, `{"mx":["a/b"]}`, `{"mx":["x@y"]}`, `nul`} {
		if _, err := decodeProbeRequest([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// countingDialer counts the connections a probe attempts and makes none.
type countingDialer struct{ n atomic.Int64 }

func (d *countingDialer) DialContext(context.Context, string, string, netip.Addr) (net.Conn, error) {
	d.n.Add(1)
	return nil, errors.New("fuzz: no network")
}

// countingCommands counts the tools started and runs none.
type countingCommands struct{ n atomic.Int64 }

func (c *countingCommands) Run(context.Context, string, ...string) ([]byte, error) {
	c.n.Add(1)
	return []byte("OpenSSL 3.0.19\n"), nil
}

// panicLog records the recoverer's "panic while serving" lines.
type panicLog struct{ n atomic.Int64 }

func (h *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		h.n.Add(1)
	}
	return nil
}
func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicLog) WithGroup(string) slog.Handler      { return h }

// FuzzAgentHandler sends arbitrary requests (method, target, signature
// headers, other headers, body) to the agent's handler, twice each. The
// handler must never panic, must run a probe or a tool only for a request
// whose signature verifies, and never for the same request a second time.
func FuzzAgentHandler(f *testing.F) {
	now := time.Unix(1700000000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sign := func(method, path, body string) string {
		return Sign(testSecret, now.Unix(), method, path, []byte(body))
	}
	probeBody := `{"mx":["127.0.0.1:25"],"mta_stack":true,"nonce":"a"}`
	f.Add("POST", PathProbe, ts, sign("POST", PathProbe, probeBody), "Content-Type: application/json", []byte(probeBody))
	f.Add("POST", PathProbe, ts, sign("POST", PathProbe, ""), "", []byte(""))
	f.Add("GET", PathInfo+"?nonce=abc", ts, sign("GET", PathInfo+"?nonce=abc", ""), "", []byte(""))
	f.Add("GET", PathQueue, ts, sign("GET", PathQueue, ""), "", []byte(""))
	f.Add("GET", PathHealthz, "", "", "", []byte(""))
	f.Add("POST", PathProbe, ts, "v1="+strings.Repeat("0", 64), "", []byte(probeBody))
	f.Add("POST", PathProbe, ts, strings.ToUpper(sign("POST", PathProbe, probeBody)), "", []byte(probeBody))
	f.Add("POST", PathProbe, "99999999999", sign("POST", PathProbe, probeBody), "", []byte(probeBody))
	f.Add("PUT", "/v1/probe/../v1/probe", ts, sign("PUT", PathProbe, ""), "X-Forwarded-For: 1.2.3.4\nTransfer-Encoding: chunked", []byte("{"))
	f.Add("POST", PathProbe, ts, sign("POST", PathProbe, `{"source_ips":["::"]}`), "", []byte(`{"source_ips":["::"]}`))
	f.Add("GET", "/%2e%2e/v1/info", ts, "v1=", "X-Gmailtls-Timestamp: 1\nX-Gmailtls-Signature: v1=00", []byte("\x00\xff"))
	// The oracle sees what runs: a signed probe and a signed read do.
	for _, c := range []struct{ method, target, sig, body string }{
		{"POST", PathProbe, sign("POST", PathProbe, probeBody), probeBody},
		{"GET", PathInfo + "?nonce=abc", sign("GET", PathInfo+"?nonce=abc", ""), ""},
	} {
		res := agentFuzzCase(now, c.method, c.target, ts, c.sig, "", []byte(c.body))
		if res.first == 0 || res.second != 0 || res.panics != 0 || res.codes[0] != 200 || res.codes[1] != 401 {
			f.Fatalf("%s %s: %+v", c.method, c.target, res)
		}
	}
	f.Fuzz(func(t *testing.T, method, target, tsHeader, sigHeader, headers string, body []byte) {
		res := agentFuzzCase(now, method, target, tsHeader, sigHeader, headers, body)
		if !res.valid {
			return // net/http never hands such a request to a handler
		}
		if res.panics > 0 {
			t.Fatalf("the handler panicked (answered %v)", res.codes)
		}
		if res.first > 0 && res.verr != nil {
			t.Fatalf("%s %s ran a probe or tool (answered %d) without a valid signature: %v", method, target, res.codes[0], res.verr)
		}
		if res.second > 0 {
			t.Fatalf("%s %s ran again when sent a second time (answered %d)", method, target, res.codes[1])
		}
	})
}

// agentFuzzResult is what one FuzzAgentHandler case saw.
type agentFuzzResult struct {
	valid         bool   // the target parses as a request URI
	codes         [2]int // the two answers
	first, second int64  // dials and tools started by each request
	panics        int64
	verr          error // the signature's verification
}

// agentFuzzCase sends one request twice to a new agent handler whose
// probes and tools only count what they would run.
func agentFuzzCase(now time.Time, method, target, tsHeader, sigHeader, headers string, body []byte) agentFuzzResult {
	var res agentFuzzResult
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return res
	}
	res.valid = true
	d, cmds, plog := &countingDialer{}, &countingCommands{}, &panicLog{}
	base := probe.Config{Relay: "fuzz", MX: []probe.Target{{Host: "127.0.0.1", Port: 25}}, Dialer: d,
		Timeout: time.Second, NoRetry: true, HelloName: "relay.fuzz.example"}
	h := NewServer(ServerConfig{Base: base, Secrets: [][]byte{testSecret}, Now: func() time.Time { return now },
		Commands: cmds, MTAStack: true, Logger: slog.New(plog), MaxBody: 4 << 10})
	hdr := http.Header{}
	for line := range strings.Lines(headers) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			hdr.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v))
		}
	}
	if tsHeader != "" {
		hdr.Set(HeaderTimestamp, tsHeader)
	}
	if sigHeader != "" {
		hdr.Set(HeaderSignature, sigHeader)
	}
	ran := func() int64 { return d.n.Load() + cmds.n.Load() }
	for i := range 2 {
		req := &http.Request{
			Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: hdr.Clone(), Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
			Host: "agent.fuzz.example", RemoteAddr: "192.0.2.1:40000",
		}
		before := ran()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res.codes[i] = w.Code
		if i == 0 {
			res.first = ran() - before
		} else {
			res.second = ran() - before
		}
	}
	res.panics = plog.n.Load()
	signed := u.Path
	if u.RawQuery != "" {
		signed += "?" + u.RawQuery
	}
	res.verr = Verify([][]byte{testSecret}, hdr.Get(HeaderTimestamp), hdr.Get(HeaderSignature), method, signed, body, now)
	return res
}
