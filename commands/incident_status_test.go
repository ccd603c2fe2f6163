package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// TestStatusShowsWhoMuted: an open incident's level is the one stored (it
// rose), and while it is muted the status says by whom and until when, in
// the text and in --json; after the mute it says nothing of it.
func TestStatusShowsWhoMuted(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	id, err := e.store.OpenIncident(ctx, storage.Incident{Relay: "relay-1", Level: "watch", Scope: "one_event"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetIncidentLevel(ctx, id, "investigate", "one_host"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MuteIncident(ctx, id, testBase.Add(time.Hour), "U0G9QF9GZ"); err != nil {
		t.Fatal(err)
	}
	m, err := e.h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.OpenIncidents) != 1 {
		t.Fatalf("open incidents %+v", m.OpenIncidents)
	}
	in := m.OpenIncidents[0]
	if in.Level != "investigate" || in.Scope != "one_host" || in.MutedBy != "U0G9QF9GZ" || in.MutedUntil == nil || !in.MutedUntil.Equal(testBase.Add(time.Hour)) {
		t.Errorf("incident status %+v", in)
	}
	b, err := json.Marshal(in)
	if err != nil || !strings.Contains(string(b), `"muted_by":"U0G9QF9GZ"`) || !strings.Contains(string(b), `"muted_until":"2026-05-04T13:03:00Z"`) {
		t.Errorf("json %s %v", b, err)
	}
	var out bytes.Buffer
	if err := RenderText(&out, e.h.StatusResponse(m)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "not acknowledged, muted by U0G9QF9GZ until 13:03") || !strings.Contains(out.String(), "investigate") {
		t.Errorf("status text lacks the mute:\n%s", out.String())
	}

	e.clock.Advance(2 * time.Hour)
	if m, err = e.h.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if in := m.OpenIncidents[0]; in.MutedBy != "" || in.MutedUntil != nil {
		t.Errorf("mute over, still shown: %+v", in)
	}
}
