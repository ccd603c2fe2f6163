package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func goldenJSON(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	golden.Check(t, filepath.Join("testdata", name+".json"), got, *update, "-update")
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// sampleAlert is relay-2 at investigate, confirmed by its re-probe while a
// second relay passes toward the same addresses.
func sampleAlert() Alert {
	opened := time.Date(2026, 3, 2, 11, 3, 0, 0, time.UTC)
	failing := results("relay-2", false, opened.Add(-time.Minute))
	again := results("relay-2", false, opened)
	second := results("relay-9", true, opened)
	for i := range failing {
		failing[i].Transcript = nil
		again[i].Transcript = nil
	}
	return Alert{
		IncidentID: 7, Relay: "relay-2", Level: escalation.LevelInvestigate, Scope: escalation.ScopeOneHost,
		Advice:   escalation.AdviceFor(escalation.LevelInvestigate, escalation.ScopeOneHost),
		OpenedAt: opened, Failing: failing, Evidence: []int64{41, 42, 45, 46, 49, 50},
		Confirmed: true, Again: again, SecondRelay: "relay-9", Second: second,
		Transcript: Tail(results("relay-2", false, opened)[0].Transcript, TranscriptLines),
	}
}

func TestAlertResponseGolden(t *testing.T) {
	loc := berlin(t)
	a := sampleAlert()
	goldenJSON(t, "alert", AlertResponse(a, loc))

	acked := a
	acked.AckedBy, acked.AckedAt = "U024BE7LH", a.OpenedAt.Add(62*time.Minute)
	acked.MutedBy, acked.MutedUntil = "U0G9QF9GZ", a.OpenedAt.Add(2*time.Hour)
	goldenJSON(t, "alert_acked_muted", AlertResponse(acked, loc))

	resolved := acked
	resolved.ResolvedAt = a.OpenedAt.Add(42 * time.Minute)
	goldenJSON(t, "alert_resolved", AlertResponse(resolved, loc))

	global := Alert{IncidentID: 9, Level: escalation.LevelIncident, Scope: escalation.ScopeAllGmail,
		Advice:   escalation.AdviceFor(escalation.LevelIncident, escalation.ScopeAllGmail),
		OpenedAt: a.OpenedAt, FailingRelays: []string{"relay-1", "relay-2"}, Confirmed: true,
		ConfirmNote: "Confirmed by the re-probes of the alerts of relay-1 (#6), relay-2 (#7)."}
	goldenJSON(t, "alert_global", AlertResponse(global, loc))
}

func TestNotesGolden(t *testing.T) {
	loc := berlin(t)
	a := sampleAlert()
	goldenJSON(t, "resolution", ResolutionResponse(a, a.OpenedAt.Add(42*time.Minute), loc))
	goldenJSON(t, "reminder", ReminderResponse(a, a.OpenedAt.Add(2*time.Hour+time.Minute), loc))
	risen := a
	risen.Relay, risen.Level, risen.Scope = "", escalation.LevelIncident, escalation.ScopeAllGmail
	risen.Advice = escalation.AdviceFor(risen.Level, risen.Scope)
	risen.FailingRelays = []string{"relay-1", "relay-2"}
	goldenJSON(t, "level_note", LevelNoteResponse(risen, escalation.LevelInvestigate, a.OpenedAt.Add(10*time.Minute), loc))
	goldenJSON(t, "flap", FlapResponse(escalation.Flap{Relay: "relay-2", Changes: 6, Since: a.OpenedAt}, escalation.LevelWatch, a.OpenedAt.Add(40*time.Minute), loc))
}

// TestAlertRendersEveryPart checks the parts the issue asks of an alert in
// the text rendering, apart from the golden bytes.
func TestAlertRendersEveryPart(t *testing.T) {
	text := render(t, AlertResponse(sampleAlert(), berlin(t)))
	for _, want := range []string{
		"relay-2: STARTTLS toward Gmail failing, investigate (one_host)", // level, scope
		"test STARTTLS on that relay",                                    // advice
		"Re-probe from relay-2:", "Second relay relay-9",                 // both results
		"!! TLS handshake: connection reset by peer", // transcript
		"Re-run", "Acknowledge", "Mute 1h", "12:03 CET",
	} {
		if !bytes.Contains([]byte(text), []byte(want)) {
			t.Errorf("alert lacks %q:\n%s", want, text)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		20 * time.Second: "less than a minute", 42 * time.Minute: "42m", 42*time.Minute + 29*time.Second: "42m",
		time.Hour: "1h", 65 * time.Minute: "1h5m", 49 * time.Hour: "2d1h", 72 * time.Hour: "3d",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestKeysAndValues(t *testing.T) {
	at := time.Date(2026, 3, 2, 11, 59, 59, 0, time.UTC)
	for got, want := range map[string]string{
		AlertKey(7):                                "alert:7",
		LevelKey(7, escalation.LevelIncident):      "alert:7:level:incident",
		LevelNoteKey(7, escalation.LevelIncident):  "alert:7:level:incident:note",
		ResolutionKey(7):                           "resolution:7",
		AckKey(7):                                  "alert:7:ack",
		RemindKey(7, 3):                            "remind:7:3",
		FlapKey("", at):                            "flap:global:2026-03-02T11:59:59Z",
		FlapKey("relay-2", at.Add(time.Second)):    "flap:relay-2:2026-03-02T12:00:00Z",
		RerunValue("relay-2"):                      "relay=relay-2",
		RerunValue(""):                             "relay=all",
		userRef("U024BE7LH") + userRef("console"):  "<@U024BE7LH>console",
		userRef("<@U024BE7LH>") + userRef("W0ABC"): "<@U024BE7LH><@W0ABC>",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if id, err := ParseIncidentValue(" 42 "); err != nil || id != 42 {
		t.Errorf("ParseIncidentValue(42) = %d, %v", id, err)
	}
	for _, bad := range []string{"", "0", "-3", "relay=relay-2", "9999999999999999999999"} {
		if _, err := ParseIncidentValue(bad); !errors.Is(err, ErrButton) {
			t.Errorf("ParseIncidentValue(%q) = %v, want ErrButton", bad, err)
		}
	}
}

// TestAgentFailuresDoNotConfirm: a re-probe that only reached the relay's
// agent confirms nothing about Gmail.
func TestAgentFailuresDoNotConfirm(t *testing.T) {
	agent := []probe.Result{{Relay: "relay-2", OK: false, Stage: probe.StageAgent, Failure: probe.FailAgentUnreachable}}
	if gmailFailure(agent) {
		t.Error("agent_unreachable counted as a Gmail failure")
	}
	if !gmailFailure(results("relay-2", false, time.Now())) || gmailFailure(results("relay-2", true, time.Now())) {
		t.Error("gmailFailure misreads probe results")
	}
	var _ message.Response = AlertResponse(Alert{}, nil) // the zero alert renders
}

// FuzzParseIncidentValue: a button value from Slack never panics, and what
// parses round-trips.
func FuzzParseIncidentValue(f *testing.F) {
	for _, s := range []string{"7", " 42 ", "0", "-1", "relay=relay-2", "", "99999999999999999999", "7\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIncidentValue(s)
		if err != nil {
			if !errors.Is(err, ErrButton) {
				t.Fatalf("error %v does not wrap ErrButton", err)
			}
			return
		}
		if id <= 0 {
			t.Fatalf("parsed %q to %d", s, id)
		}
		if back, err := ParseIncidentValue(IncidentValue(id)); err != nil || back != id {
			t.Fatalf("round trip of %d: %d, %v", id, back, err)
		}
	})
}
