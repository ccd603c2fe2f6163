// Package slackfake is a stand-in for Slack that tests run on loopback. It
// speaks Slack's real wire formats, so the bot under test uses the real
// slack-go client against it:
//
//   - the Web API under /api/ (auth.test, apps.connections.open,
//     chat.postMessage, chat.update, chat.postEphemeral,
//     files.getUploadURLExternal, files.completeUploadExternal), form-encoded
//     or JSON, with the token in the form or as a Bearer header;
//   - a Socket Mode WebSocket at /ws: a hello frame on connect, envelopes the
//     test sends with SendEnvelope (to the newest connection, spread over the
//     open connections with Options.SpreadEnvelopes, or to one connection
//     with SendEnvelopeTo), WebSocket pings, disconnect frames and dropped
//     connections, and a record of every ack with its arrival time and the
//     connection it came on;
//   - an upload URL (/upload/<file id>) and response_url sinks
//     (/response/<id>) that, like Slack, accept at most five posts.
//
// Every call is recorded (method, decoded form or JSON body, time) and
// failures can be programmed per method with FailNext. WaitFor blocks until a
// predicate over the recorded state holds, without sleeping.
package slackfake

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Default tokens the stand-in accepts when Options leaves them empty.
const (
	DefaultBotToken = "xoxb-test-bot-token"
	DefaultAppToken = "xapp-test-app-token"
)

// Methods recorded for calls that are not Web API methods.
const (
	MethodResponseURL = "response_url"
	MethodUpload      = "upload"
	MethodWebSocket   = "websocket"
)

// responseURLUses is how many posts Slack accepts on one response_url.
const responseURLUses = 5

// Options configures a Server. The zero value is usable.
type Options struct {
	// BotToken is the xoxb- token the Web API accepts (DefaultBotToken).
	BotToken string
	// AppToken is the xapp- token apps.connections.open accepts
	// (DefaultAppToken).
	AppToken string
	// PingInterval is how often the WebSocket side pings the client
	// (default 200ms; Slack pings about every 10 s).
	PingInterval time.Duration
	// SpreadEnvelopes sends SendEnvelope's envelopes to the open
	// connections in turn (round-robin, in the order they connected), as
	// Slack spreads an app's envelopes over its connections (up to 10,
	// e.g. one per replica). By default every envelope goes to the newest
	// connection.
	SpreadEnvelopes bool
}

// Call is one recorded HTTP call to the stand-in.
type Call struct {
	// Method is the Web API method ("chat.postMessage"), or MethodResponseURL,
	// MethodUpload or MethodWebSocket.
	Method string
	Path   string
	// Token is the token the caller sent (form field or Bearer header).
	Token string
	// Form holds a form-encoded body; JSON holds a JSON body.
	Form url.Values
	JSON map[string]any
	// Body is the raw body (for uploads: the file content).
	Body []byte
	// Status and Error are what the stand-in answered.
	Status int
	Error  string
	At     time.Time
}

// Envelope is one Socket Mode envelope the stand-in sent.
type Envelope struct {
	ID     string
	Type   string
	SentAt time.Time
	// Conn is the connection it was written to (see ConnectionIDs); 0
	// while it waits for a connection.
	Conn int
}

// Ack is one Socket Mode ack the client sent back.
type Ack struct {
	EnvelopeID string
	// Payload is the ack's payload, nil when the ack carried none.
	Payload json.RawMessage
	At      time.Time
	// Conn is the connection the ack came on (see ConnectionIDs).
	Conn int
}

// Message is a message the bot delivered: through a Web API method or a
// response_url.
type Message struct {
	// Method is chat.postMessage, chat.update, chat.postEphemeral or
	// MethodResponseURL.
	Method string
	// ResponseID is the <id> of /response/<id> for response_url posts.
	ResponseID string
	Channel    string
	User       string
	// TS is the message's timestamp (assigned by the stand-in for
	// chat.postMessage; the updated message's ts for chat.update).
	TS       string
	ThreadTS string
	Text     string
	// Blocks are the Block Kit blocks, decoded generically.
	Blocks          []map[string]any
	ResponseType    string
	ReplaceOriginal bool
	At              time.Time
}

type failure struct {
	status     int
	retryAfter time.Duration
	slackError string
	left       int
}

type wsConn struct {
	// id numbers the connections from 1 in the order they were accepted.
	id      int
	conn    *websocket.Conn
	writeMu sync.Mutex
	done    chan struct{}
}

func (c *wsConn) write(frame []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, frame)
}

// Server is a running stand-in. Create it with New and Close it when done.
type Server struct {
	opts     Options
	hs       *httptest.Server
	upgrader websocket.Upgrader
	wg       sync.WaitGroup

	mu          sync.Mutex
	changed     chan struct{}
	calls       []Call
	messages    []Message
	envelopes   []Envelope
	acks        []Ack
	conns       []*wsConn
	connections int
	nextConn    int // SpreadEnvelopes' turn: an index into conns
	pending     []pendingEnvelope
	sent        map[string]sentEnvelope
	failures    map[string][]*failure
	responses   map[string]int
	seq         int
	closed      bool
}

type pendingEnvelope struct {
	index int
	frame []byte
}

// New starts a stand-in on 127.0.0.1 and returns it.
func New(opts Options) *Server {
	if opts.BotToken == "" {
		opts.BotToken = DefaultBotToken
	}
	if opts.AppToken == "" {
		opts.AppToken = DefaultAppToken
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 200 * time.Millisecond
	}
	s := &Server{
		opts:      opts,
		changed:   make(chan struct{}),
		failures:  map[string][]*failure{},
		responses: map[string]int{},
		// slack-go dials with Origin https://api.slack.com, which the
		// default origin check refuses.
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.handleAPI)
	mux.HandleFunc("/ws", s.handleWS)
	mux.HandleFunc("/upload/", s.handleUpload)
	mux.HandleFunc("/response/", s.handleResponseURL)
	s.hs = httptest.NewServer(mux)
	return s
}

// URL is the stand-in's base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.hs.URL }

// APIURL is the Web API base to hand to slack.OptionAPIURL; it ends in "/".
func (s *Server) APIURL() string { return s.hs.URL + "/api/" }

// ResponseURL returns a response_url for id that posts to the stand-in.
func (s *Server) ResponseURL(id string) string { return s.hs.URL + "/response/" + url.PathEscape(id) }

// Client returns an HTTP client for the stand-in (for HTTP-mode requests).
func (s *Server) Client() *http.Client { return s.hs.Client() }

// Close drops every WebSocket connection and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.conn.Close()
	}
	s.wg.Wait()
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// notifyLocked wakes every WaitFor. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitFor blocks until pred returns true or ctx ends. pred is evaluated
// again after every recorded change (call, ack, connection), and every
// 10 ms for conditions outside the Server (a handler's state, say); it may
// call the Server's accessors.
func (s *Server) WaitFor(ctx context.Context, pred func() bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if pred() {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("slackfake: condition not reached: %w", ctx.Err())
		}
	}
}

// FailNext makes the next n calls to method fail. status 429 answers with
// Retry-After (whole seconds, rounded up) when retryAfter > 0; other non-200
// statuses answer that status; status 0 or 200 with a slackError answers
// 200 {"ok":false,"error":slackError}. method is a Web API method name or
// MethodResponseURL, MethodUpload.
func (s *Server) FailNext(method string, status int, retryAfter time.Duration, slackError string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], &failure{status: status, retryAfter: retryAfter, slackError: slackError, left: n})
}

// takeFailure returns the programmed failure for method, if any.
func (s *Server) takeFailure(method string) *failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.failures[method]
	for len(list) > 0 && list[0].left <= 0 {
		list = list[1:]
	}
	s.failures[method] = list
	if len(list) == 0 {
		return nil
	}
	f := *list[0]
	list[0].left--
	return &f
}

// writeFailure answers a programmed failure and returns the error text.
func writeFailure(w http.ResponseWriter, f *failure) (int, string) {
	status := f.status
	if status == 0 {
		status = http.StatusOK
	}
	errText := f.slackError
	if errText == "" {
		switch {
		case status == http.StatusTooManyRequests:
			errText = "ratelimited"
		case status >= 500:
			errText = "internal_error"
		default:
			errText = "fatal_error"
		}
	}
	if status == http.StatusTooManyRequests && f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.retryAfter.Seconds()))))
	}
	writeJSON(w, status, map[string]any{"ok": false, "error": errText})
	return status, errText
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// record appends a call (and the message it carried, if any).
func (s *Server) record(c Call, m *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	if m != nil {
		s.messages = append(s.messages, *m)
	}
	s.notifyLocked()
}

// nextTS returns a unique Slack-style message timestamp.
func (s *Server) nextTS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("1700000000.%06d", s.seq)
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

// readBody reads a request body of at most 4 MiB and decodes it by its
// content type.
func readBody(r *http.Request) (raw []byte, form url.Values, obj map[string]any, err error) {
	raw, err = io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return nil, nil, nil, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &obj); err != nil {
				return raw, nil, nil, err
			}
		}
	case "application/x-www-form-urlencoded", "":
		form, err = url.ParseQuery(string(raw))
		if err != nil {
			return raw, nil, nil, err
		}
	}
	return raw, form, obj, nil
}

// field returns a parameter from the form or the JSON body.
func field(form url.Values, obj map[string]any, name string) string {
	if form != nil {
		if v := form.Get(name); v != "" {
			return v
		}
	}
	if obj != nil {
		switch v := obj[name].(type) {
		case string:
			return v
		case nil:
		default:
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
	return ""
}

// decodeBlocks decodes a blocks parameter: a JSON string (form) or array.
func decodeBlocks(form url.Values, obj map[string]any) []map[string]any {
	var raw []byte
	if form != nil && form.Get("blocks") != "" {
		raw = []byte(form.Get("blocks"))
	} else if obj != nil && obj["blocks"] != nil {
		if s, ok := obj["blocks"].(string); ok {
			raw = []byte(s)
		} else {
			raw, _ = json.Marshal(obj["blocks"])
		}
	}
	if raw == nil {
		return nil
	}
	var blocks []map[string]any
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil
	}
	return blocks
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	raw, form, obj, err := readBody(r)
	call := Call{Method: method, Path: r.URL.Path, Form: form, JSON: obj, Body: raw, At: time.Now()}
	call.Token = bearer(r)
	if call.Token == "" {
		call.Token = field(form, obj, "token")
	}
	if err != nil {
		call.Status, call.Error = http.StatusBadRequest, "invalid_form_data"
		writeJSON(w, call.Status, map[string]any{"ok": false, "error": call.Error})
		s.record(call, nil)
		return
	}
	if f := s.takeFailure(method); f != nil {
		call.Status, call.Error = writeFailure(w, f)
		s.record(call, nil)
		return
	}

	want := s.opts.BotToken
	if method == "apps.connections.open" {
		want = s.opts.AppToken
	}
	switch {
	case call.Token == "":
		call.Error = "not_authed"
	case !hmac.Equal([]byte(call.Token), []byte(want)):
		call.Error = "invalid_auth"
	}
	if call.Error != "" {
		call.Status = http.StatusOK
		writeJSON(w, call.Status, map[string]any{"ok": false, "error": call.Error})
		s.record(call, nil)
		return
	}

	call.Status = http.StatusOK
	var msg *Message
	reply := map[string]any{"ok": true}
	switch method {
	case "auth.test":
		reply["url"] = "https://fake.slack.test/"
		reply["team"] = "Fake Workspace"
		reply["user"] = "gmailtls"
		reply["team_id"] = "T0001"
		reply["user_id"] = "U0BOT"
		reply["bot_id"] = "B0BOT"
	case "apps.connections.open":
		reply["url"] = "ws" + strings.TrimPrefix(s.hs.URL, "http") + "/ws?ticket=" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
	case "chat.postMessage", "chat.postEphemeral", "chat.update":
		channel := field(form, obj, "channel")
		if channel == "" {
			call.Error = "channel_not_found"
			break
		}
		m := Message{
			Method:   method,
			Channel:  channel,
			User:     field(form, obj, "user"),
			ThreadTS: field(form, obj, "thread_ts"),
			Text:     field(form, obj, "text"),
			Blocks:   decodeBlocks(form, obj),
			At:       call.At,
		}
		switch method {
		case "chat.postMessage":
			m.TS = s.nextTS()
			reply["channel"] = channel
			reply["ts"] = m.TS
			reply["message"] = map[string]any{"type": "message", "text": m.Text, "ts": m.TS, "bot_id": "B0BOT"}
		case "chat.postEphemeral":
			if m.User == "" {
				call.Error = "user_not_in_channel"
				break
			}
			m.TS = s.nextTS()
			reply["message_ts"] = m.TS
		case "chat.update":
			m.TS = field(form, obj, "ts")
			if m.TS == "" {
				call.Error = "message_not_found"
				break
			}
			reply["channel"] = channel
			reply["ts"] = m.TS
			reply["text"] = m.Text
		}
		if call.Error == "" {
			msg = &m
		}
	case "files.getUploadURLExternal":
		if field(form, obj, "filename") == "" || field(form, obj, "length") == "" {
			call.Error = "invalid_arguments"
			break
		}
		s.mu.Lock()
		s.seq++
		id := fmt.Sprintf("F%07d", s.seq)
		s.mu.Unlock()
		reply["upload_url"] = s.hs.URL + "/upload/" + id
		reply["file_id"] = id
	case "files.completeUploadExternal":
		var files []map[string]any
		if err := json.Unmarshal([]byte(field(form, obj, "files")), &files); err != nil || len(files) == 0 {
			call.Error = "invalid_arguments"
			break
		}
		reply["files"] = files
	default:
		call.Error = "unknown_method"
	}
	if call.Error != "" {
		reply = map[string]any{"ok": false, "error": call.Error}
	}
	writeJSON(w, call.Status, reply)
	s.record(call, msg)
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	call := Call{Method: MethodUpload, Path: r.URL.Path, Token: bearer(r), At: time.Now()}
	if f := s.takeFailure(MethodUpload); f != nil {
		call.Status, call.Error = writeFailure(w, f)
		s.record(call, nil)
		return
	}
	file, _, err := r.FormFile("file")
	if err != nil {
		call.Status, call.Error = http.StatusBadRequest, "no file part"
		http.Error(w, call.Error, call.Status)
		s.record(call, nil)
		return
	}
	defer file.Close()
	call.Body, _ = io.ReadAll(io.LimitReader(file, 4<<20))
	call.Status = http.StatusOK
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "OK - %d", len(call.Body))
	s.record(call, nil)
}

func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/response/")
	raw, _, obj, err := readBody(r)
	call := Call{Method: MethodResponseURL, Path: r.URL.Path, JSON: obj, Body: raw, At: time.Now()}
	if err != nil || obj == nil {
		call.Status, call.Error = http.StatusBadRequest, "invalid_payload"
		http.Error(w, call.Error, call.Status)
		s.record(call, nil)
		return
	}
	if f := s.takeFailure(MethodResponseURL); f != nil {
		call.Status, call.Error = writeFailure(w, f)
		s.record(call, nil)
		return
	}
	s.mu.Lock()
	used := s.responses[id]
	if used < responseURLUses {
		s.responses[id] = used + 1
	}
	s.mu.Unlock()
	if used >= responseURLUses {
		call.Status, call.Error = http.StatusNotFound, "used_url"
		http.Error(w, call.Error, call.Status)
		s.record(call, nil)
		return
	}
	replace, _ := obj["replace_original"].(bool)
	m := Message{
		Method:          MethodResponseURL,
		ResponseID:      id,
		ThreadTS:        field(nil, obj, "thread_ts"),
		Text:            field(nil, obj, "text"),
		Blocks:          decodeBlocks(nil, obj),
		ResponseType:    field(nil, obj, "response_type"),
		ReplaceOriginal: replace,
		At:              call.At,
	}
	call.Status = http.StatusOK
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	s.record(call, &m)
}

// Calls returns every recorded call, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the recorded calls to one method.
func (s *Server) CallsTo(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the messages delivered successfully, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// MessagesBy returns the messages delivered successfully through one Web
// API method (MethodPostMessage, "chat.update", …), oldest first.
func (s *Server) MessagesBy(method string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

// Signature returns Slack's v0 request signature for body sent at ts:
// "v0=" + hex(HMAC-SHA256(secret, "v0:<unix ts>:<body>")).
func Signature(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", ts.Unix())
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignedRequest builds an HTTP-mode request to target (a /slack/commands or
// /slack/interactivity URL) carrying a form body signed with secret at ts,
// as Slack sends it.
func SignedRequest(ctx context.Context, target, secret string, ts time.Time, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Signature(secret, ts, []byte(body)))
	return req, nil
}
