package slackfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode envelope types, as Slack names them.
const (
	EnvelopeSlashCommands = "slash_commands"
	EnvelopeInteractive   = "interactive"
	EnvelopeEventsAPI     = "events_api"
)

// handleWS serves the Socket Mode WebSocket: hello on connect, pending
// envelopes, pings, and a read loop that records acks.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	call := Call{Method: MethodWebSocket, Path: r.URL.Path, At: time.Now()}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		call.Status, call.Error = http.StatusBadRequest, err.Error()
		s.record(call, nil)
		return
	}
	c := &wsConn{conn: conn, done: make(chan struct{})}
	hello, _ := json.Marshal(map[string]any{
		"type":            "hello",
		"num_connections": 1,
		"debug_info":      map[string]any{"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": "A123456"},
	})
	if err := c.write(hello); err != nil {
		_ = conn.Close()
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	s.connections++
	c.id = s.connections
	s.conns = append(s.conns, c)
	pending := s.pending
	s.pending = nil
	call.Status = http.StatusSwitchingProtocols
	s.calls = append(s.calls, call)
	s.wg.Add(1)
	s.notifyLocked()
	s.mu.Unlock()

	go s.pinger(c)
	for _, p := range pending {
		s.writeEnvelope(c, p)
	}
	defer s.wg.Done()
	s.readAcks(c)
}

// pinger sends WebSocket pings until the connection ends.
func (s *Server) pinger(c *wsConn) {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)); err != nil {
				return
			}
		}
	}
}

// readAcks reads frames from the client and records acks until the
// connection fails.
func (s *Server) readAcks(c *wsConn) {
	defer func() {
		close(c.done)
		_ = c.conn.Close()
		s.mu.Lock()
		for i, x := range s.conns {
			if x == c {
				s.conns = append(s.conns[:i:i], s.conns[i+1:]...)
				break
			}
		}
		s.notifyLocked()
		s.mu.Unlock()
	}()
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		var frame struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &frame) != nil || frame.EnvelopeID == "" {
			continue
		}
		if string(frame.Payload) == "null" {
			frame.Payload = nil
		}
		s.mu.Lock()
		s.acks = append(s.acks, Ack{EnvelopeID: frame.EnvelopeID, Payload: frame.Payload, At: at, Conn: c.id})
		s.notifyLocked()
		s.mu.Unlock()
	}
}

// writeEnvelope writes one envelope frame and stamps its send time and
// connection.
func (s *Server) writeEnvelope(c *wsConn, p pendingEnvelope) {
	s.mu.Lock()
	s.envelopes[p.index].SentAt = time.Now()
	s.envelopes[p.index].Conn = c.id
	s.mu.Unlock()
	if err := c.write(p.frame); err != nil {
		// The connection is going away: keep the envelope for the next one,
		// as Slack redelivers unacknowledged envelopes.
		s.mu.Lock()
		s.pending = append(s.pending, p)
		s.mu.Unlock()
	}
}

// SendEnvelope sends a Socket Mode envelope of the given type
// (EnvelopeSlashCommands, EnvelopeInteractive, …) with payload as its
// "payload" and returns its envelope_id. It goes to the newest open
// connection, or with Options.SpreadEnvelopes to the next one in turn.
// With no connection open, the envelope waits and goes out on the next
// connection.
func (s *Server) SendEnvelope(typ string, payload any) (envelopeID string) {
	id := s.newEnvelopeID()
	_ = s.sendFrame(id, typ, payload, 0, 0)
	return id
}

// ErrNoConnection is SendEnvelopeTo's and ResendEnvelopeTo's error when
// the connection named is not open.
var ErrNoConnection = errors.New("slackfake: no such open Socket Mode connection")

// SendEnvelopeTo is SendEnvelope on one connection, conn (one of
// ConnectionIDs), as Slack picks one of an app's connections for each
// envelope. It fails with ErrNoConnection, sending nothing, when conn is
// not open.
func (s *Server) SendEnvelopeTo(conn int, typ string, payload any) (envelopeID string, err error) {
	id := s.newEnvelopeID()
	if err := s.sendFrame(id, typ, payload, 0, conn); err != nil {
		return "", err
	}
	return id, nil
}

func (s *Server) newEnvelopeID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("env-%06d", s.seq)
}

// ResendEnvelope sends envelope id again, as Slack redelivers an envelope
// whose ack did not arrive in time (retry_attempt 1, retry_reason
// "timeout"). It is recorded as a further Envelope with the same ID.
func (s *Server) ResendEnvelope(id string) {
	s.mu.Lock()
	orig, ok := s.sent[id]
	s.mu.Unlock()
	if !ok {
		panic("slackfake: ResendEnvelope of an envelope never sent: " + id)
	}
	_ = s.sendFrame(id, orig.typ, orig.payload, 1, 0)
}

// ResendEnvelopeTo is ResendEnvelope on one connection, conn: Slack may
// redeliver an envelope on another of the app's connections than the
// first delivery's. It fails with ErrNoConnection when conn is not open.
func (s *Server) ResendEnvelopeTo(conn int, id string) error {
	s.mu.Lock()
	orig, ok := s.sent[id]
	s.mu.Unlock()
	if !ok {
		panic("slackfake: ResendEnvelopeTo of an envelope never sent: " + id)
	}
	return s.sendFrame(id, orig.typ, orig.payload, 1, conn)
}

type sentEnvelope struct {
	typ     string
	payload any
}

// sendFrame encodes and sends (or queues) one envelope frame: to
// connection to when to > 0 (ErrNoConnection when it is not open),
// otherwise to the connection Options.SpreadEnvelopes picks.
func (s *Server) sendFrame(id, typ string, payload any, retry, to int) error {
	reason := ""
	if retry > 0 {
		reason = "timeout"
	}
	frame, err := json.Marshal(map[string]any{
		"envelope_id":              id,
		"type":                     typ,
		"payload":                  payload,
		"accepts_response_payload": typ == EnvelopeSlashCommands,
		"retry_attempt":            retry,
		"retry_reason":             reason,
	})
	if err != nil {
		panic(fmt.Sprintf("slackfake: envelope payload does not encode: %v", err))
	}
	s.mu.Lock()
	var c *wsConn
	switch n := len(s.conns); {
	case to > 0:
		for _, x := range s.conns {
			if x.id == to {
				c = x
			}
		}
		if c == nil {
			open := s.connectionIDsLocked()
			s.mu.Unlock()
			return fmt.Errorf("%w: connection %d (open: %v)", ErrNoConnection, to, open)
		}
	case n > 0 && s.opts.SpreadEnvelopes:
		c = s.conns[s.nextConn%n]
		s.nextConn = s.nextConn%n + 1
	case n > 0:
		c = s.conns[n-1]
	}
	if s.sent == nil {
		s.sent = map[string]sentEnvelope{}
	}
	s.sent[id] = sentEnvelope{typ: typ, payload: payload}
	s.envelopes = append(s.envelopes, Envelope{ID: id, Type: typ})
	p := pendingEnvelope{index: len(s.envelopes) - 1, frame: frame}
	if c == nil {
		s.pending = append(s.pending, p)
	}
	s.mu.Unlock()
	if c != nil {
		s.writeEnvelope(c, p)
	}
	return nil
}

// SendDisconnect sends Slack's disconnect frame (reason e.g.
// "refresh_requested" or "warning") on every open connection.
func (s *Server) SendDisconnect(reason string) {
	frame, _ := json.Marshal(map[string]any{
		"type":       "disconnect",
		"reason":     reason,
		"debug_info": map[string]any{"host": "applink-fake"},
	})
	s.mu.Lock()
	conns := append([]*wsConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.write(frame)
	}
}

// DropConnections closes every open WebSocket connection abruptly, without
// a close frame, as a network failure would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := append([]*wsConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.conn.NetConn().Close()
	}
}

// Connections is how many WebSocket connections have been accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// OpenConnections is how many WebSocket connections are open now.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ConnectionIDs returns the ids of the open WebSocket connections, oldest
// first: connections are numbered from 1 in the order they were accepted,
// and Envelope.Conn and Ack.Conn name them.
func (s *Server) ConnectionIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connectionIDsLocked()
}

func (s *Server) connectionIDsLocked() []int {
	ids := make([]int, 0, len(s.conns))
	for _, c := range s.conns {
		ids = append(ids, c.id)
	}
	return ids
}

// Envelopes returns the envelopes sent so far. SentAt is zero for an
// envelope still waiting for a connection.
func (s *Server) Envelopes() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Envelope(nil), s.envelopes...)
}

// Acks returns the acks received so far, oldest first.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ack(nil), s.acks...)
}

// AcksFor returns the acks received for one envelope.
func (s *Server) AcksFor(envelopeID string) []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Ack
	for _, a := range s.acks {
		if a.EnvelopeID == envelopeID {
			out = append(out, a)
		}
	}
	return out
}
