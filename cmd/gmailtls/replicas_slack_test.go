package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// The replica tests of "every replica answers Slack": two serve processes
// on one database, Slack's envelopes spread over both replicas' Socket
// Mode connections, or HTTP-mode requests sent to either replica as a load
// balancer would; the follower answers commands and buttons as the leader
// does, and what must happen once (an envelope run, a signed request
// accepted, an audit entry) happens once across both.

// sqliteReplicas is the [storage] section of replicas on one SQLite file,
// and an opener of that file for the test's own reads.
func sqliteReplicas(t *testing.T, o replicaOptions) (*replicaSetup, func(context.Context) (*storage.Store, error)) {
	s := newReplicaSetupWith(t, o, "[storage]\npath = \"replicas.db\"")
	return s, func(ctx context.Context) (*storage.Store, error) {
		return storage.Open(ctx, strings.TrimSuffix(s.cfgPath, "config.toml")+"replicas.db", storage.Options{Mode: storage.ModeReadOnly})
	}
}

// postgresReplicas is sqliteReplicas on a fresh PostgreSQL database.
func postgresReplicas(t *testing.T, o replicaOptions) (*replicaSetup, func(context.Context) (*storage.Store, error)) {
	dsn := pglab.NewDatabase(t)
	s := newReplicaSetupWith(t, o, "[storage]\ndriver = \"postgres\"\ndsn_env = \"GMAILTLS_TEST_REPLICA_DSN\"", "GMAILTLS_TEST_REPLICA_DSN="+dsn)
	return s, postgresOpener(dsn)
}

// socketOptions: Slack spreads the envelopes over the open connections;
// UOPS may acknowledge alerts.
var socketOptions = replicaOptions{
	Slack: slackfake.Options{SpreadEnvelopes: true},
	Extra: "\n[access]\nadmins = [\"UOPS\"]\n",
}

func TestReplicasAnswerSocketModeSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about 20 s")
	}
	testSocketReplicas(t)(sqliteReplicas(t, socketOptions))
}

func TestReplicasAnswerSocketModePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about 20 s")
	}
	testSocketReplicas(t)(postgresReplicas(t, socketOptions))
}

// waitSlack waits up to d for pred over the stand-in's state.
func waitSlack(t *testing.T, s *slackfake.Server, what string, d time.Duration, pred func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if err := s.WaitFor(ctx, pred); err != nil {
		for _, m := range s.Messages() {
			t.Logf("message %s %s %s: %s %s", m.Method, m.ResponseID, m.Channel, m.Text, blocksText(m.Blocks))
		}
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// responses returns the messages posted on response_url id, oldest first.
func responses(s *slackfake.Server, id string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range s.Messages() {
		if m.Method == slackfake.MethodResponseURL && m.ResponseID == id {
			out = append(out, m)
		}
	}
	return out
}

// auditByUser reads the audit log: the texts of each user's entries.
func auditByUser(t *testing.T, open func(context.Context) (*storage.Store, error)) map[string][]string {
	t.Helper()
	st, err := open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := st.AuditLog(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, a := range log {
		out[a.UserID] = append(out[a.UserID], a.Text)
	}
	return out
}

// checkAudit wants exactly one audit entry per user in want, with that
// text.
func checkAudit(t *testing.T, got map[string][]string, want map[string]string) {
	t.Helper()
	for user, text := range want {
		if g := got[user]; len(g) != 1 || g[0] != text {
			t.Errorf("audit entries of %s: %q, want [%q] once", user, g, text)
		}
	}
}

// slashCmd is one slash command the tests send, from a user of its own so
// that the audit log tells each apart.
type slashCmd struct{ user, text string }

// answered reports whether a slash command's answer arrived: a check is
// acknowledged with "probing relay-1" and its result, with a Re-run
// button, follows on the response_url; status answers with relay-1's
// state in the acknowledgement itself or on the response_url.
func answered(s *slackfake.Server, c slashCmd, ack, responseID string) bool {
	rs := responses(s, responseID)
	if c.text == "check relay-1" {
		if !strings.Contains(ack, "probing relay-1") || len(rs) == 0 {
			return false
		}
		_, ok := buttonValue(rs[0].Blocks, message.ActionRerun)
		return ok && strings.Contains(blocksText(rs[0].Blocks), "relay-1")
	}
	if strings.Contains(ack, "relay-1") {
		return true
	}
	return len(rs) > 0 && strings.Contains(blocksText(rs[0].Blocks)+rs[0].Text, "relay-1")
}

// testSocketReplicas: two replicas each hold a Socket Mode connection;
// slash commands spread over both are acked once, by the replica that got
// them, and answered, the follower's too; an envelope redelivered on the
// other replica's connection is acked but not run again; the Re-run
// button and an admin's Acknowledge pressed on the follower's connection
// work (a new result; the acknowledgement stored, shown by status and on
// the alert); the audit log has each command once.
func testSocketReplicas(t *testing.T) func(*replicaSetup, func(context.Context) (*storage.Store, error)) {
	return func(s *replicaSetup, open func(context.Context) (*storage.Store, error)) {
		started := time.Now()
		_, aURL := s.start(t, "replica-a")
		waitUntil(t, "replica-a leads", 10*time.Second, func() bool { r, _ := role(aURL); return r == "leader" })
		waitSlack(t, s.slack, "replica-a's connection", 10*time.Second, func() bool { return slices.Equal(s.slack.ConnectionIDs(), []int{1}) })
		_, bURL := s.start(t, "replica-b")
		waitUntil(t, "replica-b answers as a follower", 10*time.Second, func() bool { r, _ := role(bURL); return r == "follower" })
		waitSlack(t, s.slack, "both replicas' connections", 10*time.Second, func() bool { return slices.Equal(s.slack.ConnectionIDs(), []int{1, 2}) })
		const leaderConn, followerConn = 1, 2

		// Slack spreads the commands: 1st and 3rd to the leader, 2nd and
		// 4th to the follower, which gets a check and a status.
		cmds := []slashCmd{{"U1", "status"}, {"U2", "check relay-1"}, {"U3", "check relay-1"}, {"U4", "status"}}
		ids := make([]string, len(cmds))
		for i, c := range cmds {
			ids[i] = s.slack.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{
				Text: c.text, UserID: c.user, TriggerID: fmt.Sprintf("trigger.%d", i),
				ResponseURL: s.slack.ResponseURL(fmt.Sprintf("cmd-%d", i)),
			}.Payload())
		}
		waitSlack(t, s.slack, "every command acked and answered", 20*time.Second, func() bool {
			for i, c := range cmds {
				acks := s.slack.AcksFor(ids[i])
				if len(acks) == 0 || !answered(s.slack, c, string(acks[0].Payload), fmt.Sprintf("cmd-%d", i)) {
					return false
				}
			}
			return true
		})
		conns := map[string]int{}
		for _, e := range s.slack.Envelopes() {
			conns[e.ID] = e.Conn
		}
		for i, id := range ids {
			want := leaderConn
			if i%2 == 1 {
				want = followerConn
			}
			acks := s.slack.AcksFor(id)
			if conns[id] != want || len(acks) != 1 || acks[0].Conn != want {
				t.Errorf("command %d (%s): sent on connection %d, acks %+v; want it sent to and acked once on connection %d", i, cmds[i].text, conns[id], acks, want)
			}
		}

		// Slack redelivers the follower's check on the leader's
		// connection: acked there, not run a second time.
		if err := s.slack.ResendEnvelopeTo(leaderConn, ids[1]); err != nil {
			t.Fatal(err)
		}
		waitSlack(t, s.slack, "the redelivery's ack", 5*time.Second, func() bool { return len(s.slack.AcksFor(ids[1])) == 2 })
		if ack := s.slack.AcksFor(ids[1])[1]; ack.Conn != leaderConn || ack.Payload != nil {
			t.Errorf("the redelivery was acked %+v (%s), want an empty ack on connection %d", ack, ack.Payload, leaderConn)
		}

		// Re-run pressed on the follower's connection: a new result
		// replaces the message.
		first := responses(s.slack, "cmd-1")[0]
		rerun, _ := buttonValue(first.Blocks, message.ActionRerun)
		press, err := s.slack.SendEnvelopeTo(followerConn, slackfake.EnvelopeInteractive, slackfake.Action{
			ActionID: message.ActionRerun, BlockID: "actions", Value: rerun, UserID: "U5",
			ResponseURL: s.slack.ResponseURL("rerun"), MessageTS: "1795712670.000100",
		}.Payload())
		if err != nil {
			t.Fatal(err)
		}
		waitSlack(t, s.slack, "the re-run's result", 20*time.Second, func() bool {
			rs := responses(s.slack, "rerun")
			if len(rs) == 0 || !rs[len(rs)-1].ReplaceOriginal {
				return false
			}
			last := rs[len(rs)-1]
			again, ok := buttonValue(last.Blocks, message.ActionRerun)
			return ok && again != rerun && strings.Contains(blocksText(last.Blocks), "Re-run: passed")
		})
		if acks := s.slack.AcksFor(press); len(acks) != 1 || acks[0].Conn != followerConn {
			t.Errorf("the Re-run press was acked %+v, want once on the follower's connection", acks)
		}

		// The path breaks; the leader alerts; an admin acknowledges on
		// the follower's connection.
		s.smtp.SetBehavior(smtptest.ResetAfterReady)
		waitUntil(t, "the leader's alert", 40*time.Second, func() bool { return len(s.alerts()) >= 1 })
		alert := s.alerts()[0]
		incident, ok := buttonValue(alert.Blocks, message.ActionAcknowledge)
		if !ok {
			t.Fatalf("the alert has no Acknowledge button: %s", blocksText(alert.Blocks))
		}
		ackPress, err := s.slack.SendEnvelopeTo(followerConn, slackfake.EnvelopeInteractive, slackfake.Action{
			ActionID: message.ActionAcknowledge, BlockID: "actions", Value: incident, UserID: "UOPS",
			ChannelID: "C0456EFGH", MessageTS: alert.TS, ResponseURL: s.slack.ResponseURL("ack"),
		}.Payload())
		if err != nil {
			t.Fatal(err)
		}
		waitSlack(t, s.slack, "the acknowledgement's answer", 20*time.Second, func() bool {
			for _, m := range responses(s.slack, "ack") {
				if strings.Contains(blocksText(m.Blocks)+m.Text, "acknowledged by") {
					return true
				}
			}
			return false
		})
		if acks := s.slack.AcksFor(ackPress); len(acks) != 1 || acks[0].Conn != followerConn {
			t.Errorf("the Acknowledge press was acked %+v, want once on the follower's connection", acks)
		}
		st := s.statusJSON(t)
		if len(st.OpenIncidents) != 1 || fmt.Sprint(st.OpenIncidents[0].ID) != incident ||
			st.OpenIncidents[0].AckedBy != "UOPS" || st.OpenIncidents[0].AckedAt == nil {
			t.Errorf("status shows the open incidents %+v, want incident %s acknowledged by UOPS", st.OpenIncidents, incident)
		}
		// The leader's outbox updates the alert to show who acknowledged.
		waitSlack(t, s.slack, "the alert updated with the acknowledgement", 15*time.Second, func() bool {
			for _, m := range s.slack.MessagesBy("chat.update") {
				if m.TS == alert.TS && strings.Contains(blocksText(m.Blocks)+m.Text, "UOPS") {
					return true
				}
			}
			return false
		})

		// Nothing ran twice: one result per check, the audit log has each
		// command and press once.
		time.Sleep(time.Second)
		for i, c := range cmds {
			if c.text == "check relay-1" {
				if n := len(responses(s.slack, fmt.Sprintf("cmd-%d", i))); n != 1 {
					t.Errorf("command %d: %d results, want 1", i, n)
				}
			}
		}
		checkAudit(t, auditByUser(t, open), map[string]string{
			"U1": "status", "U2": "check relay-1", "U3": "check relay-1", "U4": "status",
			"U5":   "button " + message.ActionRerun + " " + rerun,
			"UOPS": message.ActionAcknowledge + " incident " + incident,
		})
		t.Logf("%d envelopes over 2 replicas, all answered, in %s", len(s.slack.Envelopes()), time.Since(started).Round(10*time.Millisecond))
	}
}

// httpModeAddr is the log line of a replica's HTTP-mode listener.
var httpModeAddr = regexp.MustCompile(`msg="slack: http mode listening" addr=(\S+)`)

// slackURL waits for the replica's HTTP-mode address and returns its base
// URL.
func (r *replica) slackURL(t *testing.T) string {
	t.Helper()
	var u string
	waitUntil(t, r.name+"'s HTTP-mode endpoint", 20*time.Second, func() bool {
		if m := httpModeAddr.FindStringSubmatch(r.log()); m != nil {
			u = "http://" + m[1]
			return true
		}
		return false
	})
	return u
}

func TestReplicasAnswerHTTPModeSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about 10 s")
	}
	testHTTPReplicas(t)(sqliteReplicas(t, replicaOptions{Mode: "http", Schedule: "off"}))
}

func TestReplicasAnswerHTTPModePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about 10 s")
	}
	testHTTPReplicas(t)(postgresReplicas(t, replicaOptions{Mode: "http", Schedule: "off"}))
}

// signed is one signed request as Slack sent it, kept to be replayed.
type signed struct {
	path, body string
	at         time.Time
}

func (r signed) to(t *testing.T, base string) *http.Request {
	t.Helper()
	req, err := slackfake.SignedRequest(t.Context(), base+r.path, "test-signing-secret", r.at, r.body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// testHTTPReplicas: two replicas, each on its own HTTP-mode address
// behind "any load balancer": signed slash commands and button presses
// sent alternately to each are all answered; each signed request replayed
// to the OTHER replica is refused (an empty 200, nothing run), since the
// replay memory is the shared database's; the audit log has each once.
func testHTTPReplicas(t *testing.T) func(*replicaSetup, func(context.Context) (*storage.Store, error)) {
	return func(s *replicaSetup, open func(context.Context) (*storage.Store, error)) {
		started := time.Now()
		a, aURL := s.start(t, "replica-a")
		waitUntil(t, "replica-a leads", 10*time.Second, func() bool { r, _ := role(aURL); return r == "leader" })
		b, bURL := s.start(t, "replica-b")
		waitUntil(t, "replica-b answers as a follower", 10*time.Second, func() bool { r, _ := role(bURL); return r == "follower" })
		bases := []string{a.slackURL(t), b.slackURL(t)}
		names := []string{"replica-a (leader)", "replica-b (follower)"}

		// Commands alternately to each replica: each gets a check and a
		// status.
		cmds := []slashCmd{{"U1", "check relay-1"}, {"U2", "check relay-1"}, {"U3", "status"}, {"U4", "status"}}
		var sent []signed
		for i, c := range cmds {
			r := signed{path: "/slack/commands", at: time.Now(), body: slackfake.Slash{
				Text: c.text, UserID: c.user, TriggerID: fmt.Sprintf("trigger.%d", i),
				ResponseURL: s.slack.ResponseURL(fmt.Sprintf("cmd-%d", i)),
			}.Form().Encode()}
			code, reply := postBody(t, r.to(t, bases[i%2]))
			if code != http.StatusOK {
				t.Fatalf("command %d (%s) to %s: %d %s", i, c.text, names[i%2], code, reply)
			}
			waitSlack(t, s.slack, fmt.Sprintf("the answer of %s to %q", names[i%2], c.text), 20*time.Second, func() bool {
				return answered(s.slack, c, reply, fmt.Sprintf("cmd-%d", i))
			})
			sent = append(sent, r)
		}

		// Re-run pressed on each result, on the replica that did not run
		// the check.
		for i := range 2 {
			rerun, _ := buttonValue(responses(s.slack, fmt.Sprintf("cmd-%d", i))[0].Blocks, message.ActionRerun)
			id := fmt.Sprintf("rerun-%d", i)
			r := signed{path: "/slack/interactivity", at: time.Now(), body: slackfake.Action{
				ActionID: message.ActionRerun, BlockID: "gmailtls_actions", Value: rerun, Text: "Re-run",
				UserID: fmt.Sprintf("U%d", 5+i), ChannelID: "C2147483705",
				MessageTS: "1795712670.000100", ResponseURL: s.slack.ResponseURL(id),
			}.Form().Encode()}
			other := 1 - i%2
			if code, body := postBody(t, r.to(t, bases[other])); code != http.StatusOK || body != "" {
				t.Fatalf("Re-run to %s: %d %q, want an empty 200", names[other], code, body)
			}
			waitSlack(t, s.slack, "the re-run's result from "+names[other], 20*time.Second, func() bool {
				rs := responses(s.slack, id)
				if len(rs) == 0 || !rs[len(rs)-1].ReplaceOriginal {
					return false
				}
				last := rs[len(rs)-1]
				again, ok := buttonValue(last.Blocks, message.ActionRerun)
				return ok && again != rerun && strings.Contains(blocksText(last.Blocks), "Re-run: passed")
			})
			sent = append(sent, r)
		}

		// Every signed request replayed to the other replica: refused,
		// nothing run.
		probes, messages := s.smtp.Connections(), len(s.slack.Messages())
		for i, r := range sent {
			target := 1 - i%2
			if i >= len(cmds) {
				target = i % 2 // the presses went to the other one already
			}
			if code, body := postBody(t, r.to(t, bases[target])); code != http.StatusOK || body != "" {
				t.Errorf("request %d replayed to %s: %d %q, want an empty 200", i, names[target], code, body)
			}
		}
		waitUntil(t, "the refusals logged", 10*time.Second, func() bool {
			return strings.Count(a.log()+b.log(), "refused a replayed request") == len(sent)
		})
		time.Sleep(time.Second) // a replay run would probe and answer now
		if n := s.smtp.Connections(); n != probes {
			t.Errorf("the replays probed %d times", n-probes)
		}
		if n := len(s.slack.Messages()); n != messages {
			t.Errorf("the replays were answered %d times", n-messages)
		}
		want := map[string]string{}
		for _, c := range cmds {
			want[c.user] = c.text
		}
		got := auditByUser(t, open)
		for i := range 2 {
			user := fmt.Sprintf("U%d", 5+i)
			if g := got[user]; len(g) != 1 || !strings.HasPrefix(g[0], "button "+message.ActionRerun+" ") {
				t.Errorf("audit entries of %s: %q, want one Re-run", user, g)
			}
		}
		checkAudit(t, got, want)
		t.Logf("%d requests over 2 replicas answered, %d replays refused, in %s", len(sent), len(sent), time.Since(started).Round(10*time.Millisecond))
	}
}
