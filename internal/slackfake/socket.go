package slackfake

import (
	"encoding/json"
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
	s.conns = append(s.conns, c)
	s.connections++
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
		s.acks = append(s.acks, Ack{EnvelopeID: frame.EnvelopeID, Payload: frame.Payload, At: at})
		s.notifyLocked()
		s.mu.Unlock()
	}
}

// writeEnvelope writes one envelope frame and stamps its send time.
func (s *Server) writeEnvelope(c *wsConn, p pendingEnvelope) {
	s.mu.Lock()
	s.envelopes[p.index].SentAt = time.Now()
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
// "payload" and returns its envelope_id. With no connection open, the
// envelope waits and goes out on the next connection.
func (s *Server) SendEnvelope(typ string, payload any) (envelopeID string) {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("env-%06d", s.seq)
	s.mu.Unlock()
	s.sendFrame(id, typ, payload, 0)
	return id
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
	s.sendFrame(id, orig.typ, orig.payload, 1)
}

type sentEnvelope struct {
	typ     string
	payload any
}

// sendFrame encodes and sends (or queues) one envelope frame.
func (s *Server) sendFrame(id, typ string, payload any, retry int) {
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
	if s.sent == nil {
		s.sent = map[string]sentEnvelope{}
	}
	s.sent[id] = sentEnvelope{typ: typ, payload: payload}
	s.envelopes = append(s.envelopes, Envelope{ID: id, Type: typ})
	p := pendingEnvelope{index: len(s.envelopes) - 1, frame: frame}
	var c *wsConn
	if n := len(s.conns); n > 0 {
		c = s.conns[n-1]
	} else {
		s.pending = append(s.pending, p)
	}
	s.mu.Unlock()
	if c != nil {
		s.writeEnvelope(c, p)
	}
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
