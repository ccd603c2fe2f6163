package commands

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
)

// responseText is every line of a response, for assertions.
func responseText(r message.Response) string {
	var b strings.Builder
	b.WriteString(r.Title + "\n" + r.Summary + "\n")
	for _, s := range r.Sections {
		b.WriteString(s.Heading + "\n")
		for _, l := range s.Lines {
			b.WriteString(l + "\n")
		}
		for _, f := range s.Fields {
			b.WriteString(f.Label + ": " + f.Value + "\n")
		}
	}
	return b.String()
}

// TestCheckOnFullDiskShowsResults: when the disk is full (SQLite capped
// with max_page_count on a real file: SQLITE_FULL), "check relay-1" still
// shows what the probe found, says the results were not stored, and
// stores nothing and changes no level.
func TestCheckOnFullDiskShowsResults(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+e.path)
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.maxPages = pages + 1
	e.restart()
	e.runners["relay-1"].Set("tls_alert")
	for i := range 500 {
		e.clock.Advance(5 * time.Minute)
		before, err := e.store.MaxResultID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		changes := len(e.gotChanges())
		r := e.h.Run(ctx, slash("check relay-1"))
		text := responseText(r)
		if !strings.Contains(text, "not stored") {
			if strings.Contains(text, "disk is full") {
				t.Fatalf("check %d: the full disk hid the results:\n%s", i, text)
			}
			continue
		}
		if !strings.Contains(text, "not stored: ") || !strings.Contains(text, "the disk is full") {
			t.Errorf("no \"not stored: … the disk is full\" line:\n%s", text)
		}
		if !strings.Contains(text, "tls_alert") {
			t.Errorf("the probe's outcome is not shown:\n%s", text)
		}
		if len(r.Buttons) != 0 {
			t.Errorf("buttons on results that are not stored: %+v", r.Buttons)
		}
		after, err := e.store.MaxResultID(ctx)
		if err != nil || after != before {
			t.Errorf("results stored after all (%d → %d, %v)", before, after, err)
		}
		if n := len(e.gotChanges()); n != changes {
			t.Errorf("an unstored check changed levels (%d → %d changes)", changes, n)
		}
		return
	}
	t.Fatal("the capped database never filled up")
}
