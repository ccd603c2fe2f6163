package commands

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/fakerelay"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

type fakeClock = manualclock.Clock

// testEnv is a handler over a real monitor and SQLite file with fake
// relays.
type testEnv struct {
	t       *testing.T
	clock   *fakeClock
	cfg     *config.Config
	store   *storage.Store
	path    string
	runners map[string]*fakerelay.Runner
	// relays, when set for a name, is the runner the monitor gets instead
	// of the fake (a real agent, or a fake with a real mail log reader).
	relays map[string]relay.Runner
	mon    *monitor.Monitor
	h      *Handler
	// maxPages caps the database file (0: no cap): a full disk.
	maxPages int
	// alerts runs the alert buttons (nil: none).
	alerts Alerts
	// concurrency is monitor.Deps.Concurrency (0: the default).
	concurrency int

	mu      sync.Mutex
	changes []escalation.Change
}

var testBase = time.Date(2026, 5, 4, 12, 3, 0, 0, time.UTC)

func newTestEnv(t *testing.T, relays ...string) *testEnv {
	t.Helper()
	clock := manualclock.New(testBase)
	cfg, runners := fakerelay.Lab(clock.Now, relays...)
	cfg.Access.Admins = []string{"UADMIN"}
	e := &testEnv{t: t, clock: clock, cfg: cfg, runners: runners, path: filepath.Join(t.TempDir(), "gmailtls.db")}
	e.open()
	t.Cleanup(func() { e.store.Close() })
	return e
}

// open (re)opens the database and builds a fresh monitor and handler: a
// restart.
func (e *testEnv) open() {
	e.t.Helper()
	st, err := storage.Open(context.Background(), e.path, storage.Options{Now: e.clock.Now, MaxPages: e.maxPages})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := st.SyncRelays(context.Background(), relay.RelaySpecs(e.cfg)); err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	e.mon = monitor.New(monitor.Deps{Config: e.cfg, Store: st, Runners: e.relayRunners(), Now: e.clock.Now, Concurrency: e.concurrency,
		Hostname: func() (string, error) { return "bot.test.example", nil }})
	e.mon.Subscribe(func(ev monitor.Evaluation) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.changes = append(e.changes, ev.Changes...)
	})
	e.h = New(Deps{
		Service: e.mon, Alerts: e.alerts, Now: e.clock.Now, Location: time.UTC,
	})
}

// relayRunners are the fake relays as the monitor takes them.
func (e *testEnv) relayRunners() map[string]relay.Runner {
	runners := map[string]relay.Runner{}
	for n, r := range e.runners {
		runners[n] = r
		if o, ok := e.relays[n]; ok {
			runners[n] = o
		}
	}
	return runners
}

// reload applies e.cfg (changed by the test) as SIGHUP would.
func (e *testEnv) reload() { e.mon.Reload(e.cfg, e.relayRunners()) }

func (e *testEnv) restart() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// check runs one scheduled check of relay with the given outcome, five
// minutes after the previous one.
func (e *testEnv) check(relayName, outcome string) monitor.CheckResult {
	e.t.Helper()
	e.clock.Advance(5 * time.Minute)
	e.runners[relayName].Set(outcome)
	res, err := e.mon.CheckRelay(context.Background(), monitor.Check{Relay: relayName, Trigger: message.SourceSchedule, RequestedBy: "scheduler"})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *testEnv) gotChanges() []escalation.Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.changes)
}

func slash(text string) message.Request {
	return message.Request{Text: text, UserID: "UALICE", UserName: "alice", ChannelID: "COPS", Source: message.SourceSlash}
}

func TestAcknowledge(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		req       message.Request
		more      bool
		ephemeral bool
		verdict   message.Verdict
		want      string
	}{
		{"help answers at once", slash("help"), false, true, message.VerdictInfo, "check <relay|all> [--mx host]"},
		{"empty is help", slash(""), false, true, message.VerdictInfo, "Admins only"},
		{"check is acknowledged in channel", slash("check relay-2"), true, false, message.VerdictInfo, "probing relay-2 → 2 Gmail MX hosts…"},
		{"check all", slash("check all"), true, false, message.VerdictInfo, "probing 3 relays → 2 Gmail MX hosts…"},
		{"check with --mx", slash("check relay-1 --mx mx2.test.example"), true, false, message.VerdictInfo, "probing relay-1 → mx2.test.example…"},
		{"unknown relay names the relays", slash("check relay-9"), false, true, message.VerdictWarn, `there is no relay "relay-9"; the relays are relay-1, relay-2, relay-3`},
		{"unknown verb", slash("chek relay-1"), false, true, message.VerdictWarn, `did you mean "check"`},
		{"history of an unknown relay", slash("history relay-9"), false, true, message.VerdictWarn, `there is no relay "relay-9"`},
		{"evidence of an unknown relay", slash("evidence relay-9 "), false, true, message.VerdictWarn, `there is no relay "relay-9"`},
		{"history is acknowledged", slash("history relay-2"), true, true, message.VerdictInfo, "history"},
		{"unconfigured mx", slash("check relay-1 --mx evil.example.org"), false, true, message.VerdictWarn, `"evil.example.org" is not one of the pinned MX hosts (127.0.0.1:2525, mx2.test.example)`},
		{"unconfigured port", slash("check relay-1 --mx 127.0.0.1:25"), false, true, message.VerdictWarn, "is not one of the pinned MX hosts"},
		{"pause needs admin", slash("pause relay-1"), false, true, message.VerdictRefused, "pause is for gmailtls admins only"},
		{"status works", slash("status"), true, true, message.VerdictInfo, "status"},
		{"unknown button", message.Request{Action: "nope", Source: message.SourceButton}, false, true, message.VerdictWarn, `does not know the button "nope"`},
		{"bad button value", message.Request{Action: message.ActionRerun, Value: "relay=../x", Source: message.SourceButton}, false, true, message.VerdictWarn, "could not be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack, more := e.h.Acknowledge(ctx, tt.req)
			if more != tt.more {
				t.Errorf("more = %v, want %v", more, tt.more)
			}
			if ack.Ephemeral != tt.ephemeral {
				t.Errorf("ephemeral = %v, want %v", ack.Ephemeral, tt.ephemeral)
			}
			if ack.Verdict != tt.verdict {
				t.Errorf("verdict = %q, want %q", ack.Verdict, tt.verdict)
			}
			if text := flat(ack); !strings.Contains(text, tt.want) {
				t.Errorf("answer does not contain %q:\n%s", tt.want, text)
			}
		})
	}
	for _, r := range e.runners {
		if r.Calls() != 0 {
			t.Errorf("Acknowledge probed %s", r.Name())
		}
	}
}

// flat joins every text of a response, unwrapped.
func flat(r message.Response) string {
	parts := []string{r.Title, r.Summary, r.Context}
	for _, s := range r.Sections {
		parts = append(parts, s.Heading)
		parts = append(parts, s.Lines...)
		for _, f := range s.Fields {
			parts = append(parts, f.Label+": "+f.Value)
		}
	}
	for _, b := range r.Buttons {
		parts = append(parts, b.Label)
	}
	for _, t := range r.Thread {
		parts = append(parts, flat(t))
	}
	return strings.Join(parts, "\n")
}

func renderString(t *testing.T, r message.Response) string {
	t.Helper()
	var b strings.Builder
	if err := RenderText(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRefusedByChannelAndUser(t *testing.T) {
	e := newTestEnv(t)
	e.cfg.Access.Channels = []string{"COPS"}
	e.cfg.Access.Users = []string{"UALICE"}
	e.reload()
	ctx := context.Background()
	req := slash("check relay-1")
	req.ChannelID = "CRANDOM"
	ack, more := e.h.Acknowledge(ctx, req)
	if more || ack.Verdict != message.VerdictRefused || !ack.Ephemeral || !strings.Contains(ack.Summary, "does not take commands in this channel") {
		t.Fatalf("channel refusal: more=%v %+v", more, ack)
	}
	req = slash("check relay-1")
	req.UserID, req.UserName = "UEVE", "eve"
	if r := e.h.Run(ctx, req); r.Verdict != message.VerdictRefused || !strings.Contains(r.Summary, "not on the gmailtls user list") {
		t.Fatalf("user refusal: %+v", r)
	}
	if e.runners["relay-1"].Calls() != 0 {
		t.Fatal("a refused check probed")
	}
	log, err := e.store.AuditLog(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) == 0 || !strings.HasPrefix(log[0].Outcome, "refused") {
		t.Fatalf("refusal not audited: %+v", log)
	}
}

// TestEscalationThroughChecks drives the escalation levels (docs/architecture.md) through real
// storage: one failure is watch, three in a row investigate, two relays at
// investigate an incident; each change is stored and announced once, and
// a restart changes nothing.
func TestEscalationThroughChecks(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	for _, r := range []string{"relay-1", "relay-2", "relay-3"} {
		e.check(r, "ok")
	}
	res := e.check("relay-1", "tls_reset")
	if res.State.Level != escalation.LevelWatch {
		t.Fatalf("one failure: level %s, want watch", res.State.Level)
	}
	// The relay goes to watch, and so does the level across relays (the
	// highest relay level below incident).
	if len(res.Changes) != 2 || res.Changes[0].Relay != "relay-1" || res.Changes[0].To != escalation.LevelWatch || res.Changes[1].Relay != "" {
		t.Fatalf("one failure: changes %+v", res.Changes)
	}
	for range 3 {
		res = e.check("relay-2", "tls_reset")
	}
	if res.State.Level != escalation.LevelInvestigate || res.State.Scope != escalation.ScopeOneHost {
		t.Fatalf("three failures: %s/%s, want investigate/one_host", res.State.Level, res.State.Scope)
	}
	e.check("relay-1", "ok")
	for range 3 {
		res = e.check("relay-3", "cert_expired")
	}
	if res.Global.Level != escalation.LevelInvestigate {
		t.Logf("global after relay-3: %s", res.Global.Level)
	}
	// relay-1 fails three more times: relay-1 and relay-2 are both failing
	// while relay-3 also is: an incident.
	st, err := e.h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Global.Level != escalation.LevelIncident {
		t.Fatalf("global level %s, want incident: %+v", st.Global.Level, st)
	}
	levels := map[string]escalation.Level{}
	for _, r := range st.Relays {
		levels[r.Relay] = r.Level
	}
	want := map[string]escalation.Level{"relay-1": "watch", "relay-2": "investigate", "relay-3": "investigate"}
	for k, v := range want {
		if levels[k] != v {
			t.Errorf("%s at %s, want %s", k, levels[k], v)
		}
	}
	announced := e.gotChanges()
	events := countEvents(t, e.store)

	// Evaluating again changes nothing and stores nothing.
	if ev, err := e.mon.Evaluate(ctx); err != nil || len(ev.Changes) != 0 {
		t.Fatalf("Evaluate again: %v, %v", ev.Changes, err)
	}
	// A restart rebuilds the same state from the database.
	e.restart()
	st2, err := e.h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.At, st2.At = time.Time{}, time.Time{}
	if !sameStatus(st, st2) {
		t.Fatalf("status changed across a restart:\nbefore %+v\nafter  %+v", st, st2)
	}
	if ev, err := e.mon.Evaluate(ctx); err != nil || len(ev.Changes) != 0 {
		t.Fatalf("Evaluate after restart: %v, %v", ev.Changes, err)
	}
	if got := countEvents(t, e.store); got != events {
		t.Fatalf("events after restart: %d, want %d", got, events)
	}
	if len(announced) != events {
		t.Fatalf("the subscriber saw %d changes, %d events stored", len(announced), events)
	}
	// Recovery: two successes bring relay-2 back to ok.
	e.check("relay-2", "ok")
	res = e.check("relay-2", "ok")
	if res.State.Level != escalation.LevelOK {
		t.Fatalf("after two successes relay-2 is %s", res.State.Level)
	}
}

func sameStatus(a, b monitor.StatusModel) bool {
	if a.Global.Level != b.Global.Level || a.Global.Scope != b.Global.Scope || len(a.Relays) != len(b.Relays) {
		return false
	}
	for i := range a.Relays {
		x, y := a.Relays[i], b.Relays[i]
		if x.Relay != y.Relay || x.Level != y.Level || x.Scope != y.Scope || x.ConsecutiveFailures != y.ConsecutiveFailures ||
			!slices.Equal(x.Evidence, y.Evidence) || !eqTime(x.LastFailure, y.LastFailure) || !eqTime(x.LastSuccess, y.LastSuccess) {
			return false
		}
	}
	return true
}

func eqTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func countEvents(t *testing.T, st *storage.Store) int {
	t.Helper()
	n := 0
	for _, r := range []string{"", "relay-1", "relay-2", "relay-3"} {
		ev, err := st.Events(context.Background(), r, 100)
		if err != nil {
			t.Fatal(err)
		}
		n += len(ev)
	}
	return n
}

func TestCheckCannotTargetUnconfiguredHost(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	for _, text := range []string{
		"check relay-1 --mx evil.example.org",
		"check relay-1 --mx 127.0.0.1:25",
		"check relay-1 --mx 127.0.0.2:2525",
		"check relay-1 --mx [::1]:2525",
		"check all --mx smtp.example.net",
	} {
		r := e.h.Run(ctx, slash(text))
		if r.Verdict != message.VerdictWarn || !strings.Contains(r.Summary, "not one of the pinned MX hosts") {
			t.Errorf("%s: %+v", text, r)
		}
	}
	// Through the monitor directly (the scheduler's entry) as well.
	_, err := e.mon.CheckRelay(ctx, monitor.Check{Relay: "relay-1", MX: []string{"10.0.0.1:25"}, Trigger: "cli", RequestedBy: "test"})
	if !errors.Is(err, ErrTarget) {
		t.Errorf("CheckRelay with an unconfigured MX: %v, want ErrTarget", err)
	}
	// And a Re-run button forged with another host.
	btn := message.Request{Action: message.ActionRerun, Value: "relay=relay-1&mx=evil.example.org", Source: message.SourceButton, UserID: "UALICE"}
	if r := e.h.Run(ctx, btn); r.Verdict != message.VerdictWarn {
		t.Errorf("forged button: %+v", r)
	}
	for _, r := range e.runners {
		if r.Calls() != 0 {
			t.Fatalf("%s probed %d times", r.Name(), r.Calls())
		}
	}
	// A configured one goes through, narrowed to that entry.
	r := e.h.Run(ctx, slash("check relay-1 --mx 127.0.0.1"))
	if r.Verdict != message.VerdictOK {
		t.Fatalf("configured --mx: %+v", r)
	}
	if got := e.runners["relay-1"].Options(); len(got) != 1 || !slices.Equal(got[0].MX, []string{"127.0.0.1:2525"}) {
		t.Fatalf("options: %+v", got)
	}
}

func TestGmailTargetMX(t *testing.T) {
	e := newTestEnv(t)
	e.cfg.Target.MX = nil
	e.cfg.Target.Domain = "gmail.com"
	e.reload()
	snap := e.mon.Snapshot()
	if _, err := snap.ResolveMX("alt2.gmail-smtp-in.l.google.com"); err != nil {
		t.Errorf("alt2: %v", err)
	}
	for _, bad := range []string{"smtp.gmail.com", "142.250.1.27", "gmail-smtp-in.l.google.com:26", "example.com"} {
		if _, err := snap.ResolveMX(bad); !errors.Is(err, ErrTarget) {
			t.Errorf("%s: %v, want ErrTarget", bad, err)
		}
	}
	ack, more := e.h.Acknowledge(context.Background(), slash("check relay-1"))
	if !more || ack.Title != "probing relay-1 → the Gmail MX hosts of gmail.com…" {
		t.Errorf("ack %q", ack.Title)
	}
}

func TestRerunTranscriptEvidenceButtons(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.runners["relay-2"].Set("tls_reset")
	e.clock.Advance(time.Minute)
	first := e.h.Run(ctx, slash("check relay-2"))
	if first.Verdict != message.VerdictFail || first.Title != "relay-2: STARTTLS to Gmail failed" {
		t.Fatalf("first check: %q %q", first.Verdict, first.Title)
	}
	buttons := map[string]message.Button{}
	for _, b := range first.Buttons {
		buttons[b.Action] = b
	}
	for _, a := range []string{message.ActionRerun, message.ActionTranscript, message.ActionEvidence} {
		if _, ok := buttons[a]; !ok {
			t.Fatalf("no %s button: %+v", a, first.Buttons)
		}
		if len(buttons[a].Value) > 2000 {
			t.Fatalf("%s value too long", a)
		}
	}
	press := func(action string) message.Response {
		req := message.Request{Action: action, Value: buttons[action].Value, UserID: "UBOB", ChannelID: "COPS", Source: message.SourceButton}
		ack, more := e.h.Acknowledge(ctx, req)
		if !more {
			t.Fatalf("%s: ack without more: %+v", action, ack)
		}
		return e.h.Run(ctx, req)
	}
	tr := press(message.ActionTranscript)
	if !tr.Ephemeral || len(tr.Sections) == 0 || !tr.Sections[0].Code {
		t.Fatalf("transcript: %+v", tr)
	}
	if !slices.Contains(tr.Sections[0].Lines, "* connection lost during the TLS handshake") {
		t.Fatalf("transcript lines: %q", tr.Sections[0].Lines)
	}
	ev := press(message.ActionEvidence)
	text := flat(ev)
	for _, want := range []string{"relay-2 (local)", "bot.test.example (this host)", "2026-05-04T12:04:00.000+00:00 (UTC)", "tls_reset at stage handshake", "From:", "result ids: 1, 2"} {
		if !strings.Contains(text, want) {
			t.Errorf("evidence lacks %q:\n%s", want, text)
		}
	}
	e.clock.Advance(2 * time.Minute)
	e.runners["relay-2"].Set("ok")
	re := press(message.ActionRerun)
	if !re.ReplaceOriginal || re.Verdict != message.VerdictOK {
		t.Fatalf("re-run: %+v", re)
	}
	if text := flat(re); !strings.Contains(text, "Re-run: failed 12:04 → passed 12:06") {
		t.Fatalf("re-run does not show the blip:\n%s", text)
	}
	log, err := e.store.AuditLog(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) < 4 {
		t.Fatalf("audit log has %d entries", len(log))
	}
}

func TestCheckAllFoldsIntoThread(t *testing.T) {
	names := make([]string, 12)
	for i := range names {
		names[i] = "relay-" + string(rune('a'+i))
	}
	e := newTestEnv(t, names...)
	e.runners["relay-c"].Set("tls_reset")
	e.runners["relay-e"].Set("agent")
	r := e.h.Run(context.Background(), slash("check all"))
	if r.Title != "check all: 10 of 12 relays passed STARTTLS to Gmail" || r.Verdict != message.VerdictFail {
		t.Fatalf("title %q verdict %q", r.Title, r.Verdict)
	}
	// The thread holds the relays that did not pass; the passing ones are
	// their summary lines.
	if len(r.Thread) != 2 {
		t.Fatalf("thread has %d messages, want the 2 relays that did not pass", len(r.Thread))
	}
	for _, m := range r.Thread {
		if len(m.Thread) != 0 {
			t.Fatal("nested thread")
		}
	}
	if !strings.Contains(r.Thread[0].Title, "relay-c") || !strings.Contains(r.Thread[1].Title, "relay-e: the relay's agent did not answer") {
		t.Errorf("thread titles %q, %q", r.Thread[0].Title, r.Thread[1].Title)
	}
	if text := flat(r); !strings.Contains(text, "relay-a · 2/2 passed") || !strings.Contains(text, "details of the 2 relays that did not pass in the thread") {
		t.Errorf("summary:\n%s", text)
	}
	for n, f := range e.runners {
		if f.Calls() != 1 {
			t.Errorf("%s probed %d times", n, f.Calls())
		}
	}
}

func TestPauseResumeHistoryRelaysReport(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	admin := slash("pause relay-3 2h")
	admin.UserID, admin.UserName = "UADMIN", "root"
	r := e.h.Do(ctx, admin)
	if !strings.Contains(r.Title, "relay-3 paused until 14:03 by root (UADMIN)") {
		t.Fatalf("pause: %+v", r)
	}
	all, err := e.mon.CheckAll(ctx, monitor.Check{Trigger: message.SourceSchedule, RequestedBy: "scheduler", SkipPaused: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || e.runners["relay-3"].Calls() != 0 {
		t.Fatalf("paused relay probed by the scheduler: %d results", len(all))
	}
	rel := e.h.Do(ctx, slash("relays"))
	if text := flat(rel); !strings.Contains(text, "relay-3 · local · system source IP · paused until 14:03 by root (UADMIN)") {
		t.Fatalf("relays:\n%s", text)
	}
	admin.Text = "resume relay-3"
	if r := e.h.Do(ctx, admin); r.Title != "relay-3 resumed by root (UADMIN)" {
		t.Fatalf("resume: %+v", r)
	}
	e.check("relay-1", "tls_reset")
	e.check("relay-1", "ok")
	h := e.h.Do(ctx, slash("history relay-1"))
	text := flat(h)
	if !strings.Contains(text, "3 runs, 6 results, 2 failed: tls_reset ×2") {
		t.Fatalf("history:\n%s", text)
	}
	if strings.Index(text, "✓ 12:13") > strings.Index(text, "✗ 12:08") {
		t.Fatalf("history not newest first:\n%s", text)
	}
	rep := e.h.Do(ctx, slash("report"))
	text = flat(rep)
	if !strings.Contains(text, "relay-1 · watch (one_event) · 66.6% of 6 probes passed") {
		t.Fatalf("report:\n%s", text)
	}
	ev := e.h.Do(ctx, slash("evidence relay-1"))
	if text := flat(ev); !strings.Contains(text, "tls_reset at stage handshake") {
		t.Fatalf("evidence:\n%s", text)
	}
	if r := e.h.Do(ctx, slash("history relay-9")); !strings.Contains(r.Summary, `there is no relay "relay-9"`) {
		t.Fatalf("unknown relay: %+v", r)
	}
}

func FuzzButtonValue(f *testing.F) {
	f.Add(rerunValue("relay-2", 12, testBase, false, "127.0.0.1:2525"))
	f.Add(idsValue("relay-2", 12, []int64{1, 2, 3}))
	f.Add("relay=all")
	f.Add("ids=1,,2&relay=x")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseButtonValue(s)
		if err != nil {
			return
		}
		if b.Relay != message.AllRelays && !ValidRelayName(b.Relay) {
			t.Fatalf("bad relay accepted: %q", b.Relay)
		}
		if len(b.IDs) > maxButtonIDs {
			t.Fatalf("%d ids accepted", len(b.IDs))
		}
	})
}

// fakeAlerts records the alert buttons that reach the alerter.
type fakeAlerts struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeAlerts) Acknowledge(_ context.Context, id int64, userID string) (message.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("ack %d %s", id, userID))
	return message.Response{Title: fmt.Sprintf("Incident #%d acknowledged by <@%s>", id, userID), Ephemeral: true}, nil
}

func (f *fakeAlerts) Mute(_ context.Context, id int64, userID string, d time.Duration) (message.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("mute %d %s %s", id, userID, d))
	return message.Response{Title: fmt.Sprintf("Incident #%d muted", id), Ephemeral: true}, nil
}

func (f *fakeAlerts) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// TestAlertButtonsAreForAdmins: Acknowledge and Mute are routed and
// authorized here like the other buttons: a member who is not an admin is
// refused with a clean reason (no internal prefix), the press is audited,
// and the alerter never hears of it; an admin's press reaches it.
func TestAlertButtonsAreForAdmins(t *testing.T) {
	fa := &fakeAlerts{}
	e := newTestEnv(t)
	e.alerts = fa
	e.restart()
	ctx := context.Background()
	for _, action := range []string{message.ActionAcknowledge, message.ActionMute} {
		req := message.Request{Action: action, Value: "5", UserID: "UALICE", UserName: "alice", ChannelID: "CALERTS", Source: message.SourceButton}
		ack, more := e.h.Acknowledge(ctx, req)
		if more || ack.Verdict != message.VerdictRefused || !ack.Ephemeral {
			t.Fatalf("%s by a non-admin: more=%v %+v", action, more, ack)
		}
		if text := flat(ack); strings.Contains(text, "commands:") || !strings.Contains(text, "for gmailtls admins only") {
			t.Errorf("%s refusal reads:\n%s", action, text)
		}
		// Run without the acknowledgement (a caller that skips it) is
		// refused just the same.
		if r := e.h.Run(ctx, req); r.Verdict != message.VerdictRefused || strings.Contains(flat(r), "commands:") {
			t.Errorf("%s run by a non-admin: %+v", action, r)
		}
	}
	if got := fa.got(); len(got) != 0 {
		t.Fatalf("refused presses reached the alerter: %v", got)
	}
	log, err := e.store.AuditLog(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 4 {
		t.Fatalf("%d audit rows for 4 refused presses: %+v", len(log), log)
	}
	for _, row := range log {
		if !strings.HasPrefix(row.Outcome, "refused: ") || strings.Contains(row.Outcome, "commands:") || row.UserID != "UALICE" ||
			(row.Text != "gmailtls_ack incident 5" && row.Text != "gmailtls_mute incident 5") {
			t.Errorf("audit row %+v", row)
		}
	}

	for _, action := range []string{message.ActionAcknowledge, message.ActionMute} {
		req := message.Request{Action: action, Value: "5", UserID: "UADMIN", UserName: "root", ChannelID: "CALERTS", Source: message.SourceButton}
		if r := e.h.Do(ctx, req); r.Verdict == message.VerdictRefused || !strings.Contains(r.Title, "Incident #5") {
			t.Errorf("%s by an admin: %+v", action, r)
		}
	}
	if got := fa.got(); !slices.Equal(got, []string{"ack 5 UADMIN", "mute 5 UADMIN 0s"}) {
		t.Fatalf("alerter calls %v", got)
	}
	if log, err = e.store.AuditLog(ctx, 2); err != nil || len(log) != 2 || log[0].Outcome != "ok" || log[1].Outcome != "ok" {
		t.Fatalf("admin presses audited as %+v, %v", log, err)
	}
	// An unreadable value is answered, audited, and never reaches it.
	bad := message.Request{Action: message.ActionAcknowledge, Value: "five", UserID: "UADMIN", Source: message.SourceButton}
	if r := e.h.Do(ctx, bad); !strings.Contains(r.Title, "could not be read") {
		t.Errorf("unreadable value: %+v", r)
	}
	if len(fa.got()) != 2 {
		t.Error("an unreadable value reached the alerter")
	}
}

// countingService counts the configuration snapshots a request takes.
type countingService struct {
	*monitor.Monitor
	mu        sync.Mutex
	snapshots int
}

func (c *countingService) Snapshot() *monitor.Snapshot {
	c.mu.Lock()
	c.snapshots++
	c.mu.Unlock()
	return c.Monitor.Snapshot()
}

// TestCheckIsReadOnce: a check is parsed, authorized and validated when it
// is acknowledged, under one configuration snapshot, and Run works with
// what was read: a reload between the two does not change what the
// acknowledgement promised.
func TestCheckIsReadOnce(t *testing.T) {
	e := newTestEnv(t)
	cs := &countingService{Monitor: e.mon}
	h := New(Deps{Service: cs, Now: e.clock.Now, Location: time.UTC})
	ctx := context.Background()
	req := slash("check relay-2 --mx mx2.test.example")
	ack, more := h.Acknowledge(ctx, req)
	if !more || ack.Title != "probing relay-2 → mx2.test.example…" {
		t.Fatalf("ack: more=%v %q", more, ack.Title)
	}
	// SIGHUP: relay-2 leaves the configuration, and the target changes.
	e.cfg.Relays = e.cfg.Relays[:1]
	e.cfg.Target.MX = []string{"127.0.0.1:2525"}
	delete(e.runners, "relay-2")
	runner2 := e.mon.Snapshot().Runners["relay-2"].(*fakerelay.Runner)
	e.reload()
	r := h.Run(ctx, req)
	if r.Verdict != message.VerdictOK || !strings.Contains(r.Title, "relay-2") {
		t.Fatalf("run after the reload: %+v", r)
	}
	if got := runner2.Options(); len(got) != 1 || !slices.Equal(got[0].MX, []string{"mx2.test.example"}) {
		t.Fatalf("relay-2 probed with %+v", got)
	}
	if cs.snapshots != 1 {
		t.Errorf("one check took %d configuration snapshots, want 1", cs.snapshots)
	}
	// The next request reads the new configuration.
	if r := h.Do(ctx, slash("check relay-2")); !strings.Contains(r.Summary, `there is no relay "relay-2"`) {
		t.Errorf("after the reload: %+v", r)
	}
}
