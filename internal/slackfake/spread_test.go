package slackfake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// socketClient is a minimal Socket Mode client: it opens a connection as
// an app does (apps.connections.open, then the WebSocket), reads the
// hello, and acks each envelope it receives with its own name as the
// payload, so a test can tell which client got what.
type socketClient struct {
	name string
	conn *websocket.Conn
	got  chan string // envelope ids, in arrival order
}

func dialSocket(t *testing.T, s *Server, name string) *socketClient {
	t.Helper()
	resp, err := http.PostForm(s.APIURL()+"apps.connections.open", url.Values{"token": {DefaultAppToken}})
	if err != nil {
		t.Fatal(err)
	}
	var open struct {
		OK  bool   `json:"ok"`
		URL string `json:"url"`
	}
	err = json.NewDecoder(resp.Body).Decode(&open)
	resp.Body.Close()
	if err != nil || !open.OK {
		t.Fatalf("apps.connections.open: %+v %v", open, err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(open.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var hello struct{ Type string }
	if err := conn.ReadJSON(&hello); err != nil || hello.Type != "hello" {
		t.Fatalf("%s: first frame %+v %v, want hello", name, hello, err)
	}
	c := &socketClient{name: name, conn: conn, got: make(chan string, 100)}
	go func() {
		for {
			var env struct {
				EnvelopeID string `json:"envelope_id"`
			}
			if err := conn.ReadJSON(&env); err != nil {
				return
			}
			if env.EnvelopeID == "" {
				continue
			}
			c.got <- env.EnvelopeID
			if err := conn.WriteJSON(map[string]any{"envelope_id": env.EnvelopeID, "payload": map[string]string{"text": name}}); err != nil {
				return
			}
		}
	}()
	return c
}

func waitConns(t *testing.T, s *Server, want []int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, func() bool { return slices.Equal(s.ConnectionIDs(), want) }); err != nil {
		t.Fatalf("connections %v, want %v: %v", s.ConnectionIDs(), want, err)
	}
}

func waitAcks(t *testing.T, s *Server, n int) []Ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, func() bool { return len(s.Acks()) >= n }); err != nil {
		t.Fatalf("%d acks, want %d: %v", len(s.Acks()), n, err)
	}
	return s.Acks()
}

// TestSpreadEnvelopesRoundRobin: with SpreadEnvelopes, envelopes go to the
// open connections in turn; each Envelope and Ack names its connection,
// and the ack came from the client that holds it.
func TestSpreadEnvelopesRoundRobin(t *testing.T) {
	s := New(Options{SpreadEnvelopes: true})
	defer s.Close()
	a := dialSocket(t, s, "a")
	waitConns(t, s, []int{1})
	b := dialSocket(t, s, "b")
	waitConns(t, s, []int{1, 2})

	var ids []string
	for range 6 {
		ids = append(ids, s.SendEnvelope(EnvelopeSlashCommands, Slash{Text: "status"}.Payload()))
	}
	acks := waitAcks(t, s, 6)
	by := map[string]Ack{}
	for _, ack := range acks {
		by[ack.EnvelopeID] = ack
	}
	envs := s.Envelopes()
	for i, id := range ids {
		want := 1 + i%2
		if envs[i].ID != id || envs[i].Conn != want {
			t.Errorf("envelope %d: %+v, want %s on connection %d", i, envs[i], id, want)
		}
		ack, ok := by[id]
		client := map[int]string{1: "a", 2: "b"}[want]
		if !ok || ack.Conn != want || !strings.Contains(string(ack.Payload), `"`+client+`"`) {
			t.Errorf("ack of %s: %+v (%s), want one from client %s on connection %d", id, ack, ack.Payload, client, want)
		}
	}
	if len(a.got) != 3 || len(b.got) != 3 {
		t.Errorf("client a got %d envelopes, b %d; want 3 each", len(a.got), len(b.got))
	}

	// A connection that goes away leaves the turn to the others.
	a.conn.Close()
	waitConns(t, s, []int{2})
	for range 2 {
		s.SendEnvelope(EnvelopeSlashCommands, Slash{Text: "status"}.Payload())
	}
	for _, ack := range waitAcks(t, s, 8)[6:] {
		if ack.Conn != 2 {
			t.Errorf("after connection 1 closed, an ack came on connection %d", ack.Conn)
		}
	}
}

// TestSendEnvelopeTo: by default envelopes go to the newest connection;
// SendEnvelopeTo and ResendEnvelopeTo pick one, and refuse one that is
// not open.
func TestSendEnvelopeTo(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	dialSocket(t, s, "a")
	waitConns(t, s, []int{1})
	dialSocket(t, s, "b")
	waitConns(t, s, []int{1, 2})

	newest := s.SendEnvelope(EnvelopeInteractive, Action{ActionID: "x"}.Payload())
	to1, err := s.SendEnvelopeTo(1, EnvelopeInteractive, Action{ActionID: "y"}.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ResendEnvelopeTo(2, to1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendEnvelopeTo(3, EnvelopeInteractive, nil); !errors.Is(err, ErrNoConnection) {
		t.Errorf("SendEnvelopeTo a connection never opened: %v, want ErrNoConnection", err)
	}
	if err := s.ResendEnvelopeTo(7, to1); !errors.Is(err, ErrNoConnection) {
		t.Errorf("ResendEnvelopeTo a connection never opened: %v, want ErrNoConnection", err)
	}
	waitAcks(t, s, 3)
	if acks := s.AcksFor(newest); len(acks) != 1 || acks[0].Conn != 2 || !strings.Contains(string(acks[0].Payload), `"b"`) {
		t.Errorf("SendEnvelope's acks %+v, want one from the newest connection (2)", acks)
	}
	acks := s.AcksFor(to1)
	if len(acks) != 2 || acks[0].Conn+acks[1].Conn != 3 || acks[0].Conn == acks[1].Conn {
		t.Errorf("acks of the envelope sent to 1 and redelivered to 2: %+v", acks)
	}
	if envs := s.Envelopes(); len(envs) != 3 || envs[1].Conn != 1 || envs[2].ID != to1 || envs[2].Conn != 2 {
		t.Errorf("envelopes %+v", envs)
	}
}
