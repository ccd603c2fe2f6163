package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"image/png"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// summary is a fixed 6-hour health summary of three relays.
func summary(t *testing.T) monitor.SummaryModel {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	since := until.Add(-6 * time.Hour)
	hours := func(fails ...int) []chart.HourFigures {
		var out []chart.HourFigures
		for i, f := range fails {
			att := 120
			if f < 0 {
				att, f = 0, 0
			}
			out = append(out, chart.HourFigures{Hour: since.Add(time.Duration(i) * time.Hour), Attempts: att, Failures: f})
		}
		return out
	}
	rate := func(r float64) *float64 { return &r }
	last := time.Date(2026, 3, 2, 6, 40, 0, 0, time.UTC)
	relays := []monitor.RelayHealth{
		{Relay: "relay-1", Level: "ok", Attempts: 720, Failures: 0, SuccessRate: rate(1), ByClass: map[string]int{},
			MedianHandshakeMS: 41.2, Hourly: hours(0, 0, 0, 0, 0, 0)},
		{Relay: "relay-2", Level: "investigate", Scope: "one_host", Attempts: 720, Failures: 150, SuccessRate: rate(570.0 / 720),
			ByClass: map[string]int{"tls_reset": 140, "timeout_banner": 10}, MedianHandshakeMS: 55.9,
			LastFailure: &last, LastFailureClass: "tls_reset", OpenIncidents: 1, Hourly: hours(0, 0, 10, 0, 60, 80)},
		{Relay: "relay-3", Level: "ok", Attempts: 600, Failures: 0, SuccessRate: rate(1), ByClass: map[string]int{},
			MedianHandshakeMS: 38, Hourly: hours(0, 0, 0, 0, 0, -1)},
	}
	for i := range relays {
		relays[i].Trend = monitor.Trend(relays[i].Hourly, 1)
	}
	return monitor.SummaryModel{
		Since: since, Until: until, Window: "6h", TrendStep: time.Hour, TrendStepS: 3600,
		Global:        monitor.GlobalStatus{Level: "investigate", Scope: "one_host", Advice: "test STARTTLS on that relay", FailingRelays: []string{"relay-2"}},
		Relays:        relays,
		OpenIncidents: []monitor.IncidentStatus{{ID: 4, Relay: "relay-2", Level: "investigate", Scope: "one_host", OpenedAt: last}},
		Location:      berlin,
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got, *update, "-update")
}

// TestBuildReport: the report the schedule enqueues: the text (golden, as
// the console renders it)
// carries a trend per relay; the heatmap has a row per relay and a column
// per hour, and its PNG decodes at the expected size.
func TestBuildReport(t *testing.T) {
	m := summary(t)
	resp, hm := commands.ReportMessage(m)
	var text bytes.Buffer
	if err := commands.RenderText(&text, resp); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "report.txt", text.Bytes())

	if len(hm.Relays) != 3 || len(hm.Cells) != 3 || len(hm.Cells[1]) != 6 || !hm.Start.Equal(m.Since) {
		t.Fatalf("heatmap = %+v", hm)
	}
	if c := hm.Cells[1][5]; c.Attempts != 120 || c.Failures != 80 {
		t.Errorf("relay-2's last hour = %+v", c)
	}
	img, err := chart.Render(hm)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := png.Decode(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	w, h := chart.Size(hm)
	if b := decoded.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("PNG is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
}

// TestReporterEnqueuesOnce: a report is written to the outbox with its
// chart in its thread; the same run again (a restart in the same minute)
// writes nothing more, and the worker is woken.
func TestReporterEnqueuesOnce(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 8, 0, 0, 300_000_000, time.UTC)
	s, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	notified := 0
	var gotWindow time.Duration
	r := &Reporter{Store: s, Now: func() time.Time { return at }, Notify: func() { notified++ },
		Build: func(_ context.Context, window time.Duration) (message.Response, chart.Heatmap, error) {
			gotWindow = window
			resp, hm := commands.ReportMessage(summary(t))
			return resp, hm, nil
		}}
	for range 2 {
		if err := r.Report(ctx, "CREP", 6*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if gotWindow != 6*time.Hour || notified != 1 {
		t.Errorf("window %s, notified %d times; want 6h and once", gotWindow, notified)
	}
	due, err := s.DueMessages(ctx, at, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 {
		t.Fatalf("%d messages, want the report and its chart", len(due))
	}
	key := "report:CREP:6h:2026-03-02T08:00Z"
	if due[0].Key != key || due[0].Kind != storage.KindReport || due[0].Channel != "CREP" {
		t.Errorf("report message = %+v", due[0])
	}
	if due[1].Key != key+":chart" || due[1].ThreadKey != key {
		t.Errorf("chart message = %+v", due[1])
	}
	p, err := outbox.DecodePayload(due[0].Payload)
	if err != nil || p.WithChart || p.Title == "" {
		t.Errorf("report payload = %+v, %v", p, err)
	}
	// The payload is a plain message.Response too.
	var plain message.Response
	if err := jsonUnmarshal(due[0].Payload, &plain); err != nil || plain.Title != p.Title {
		t.Errorf("report payload as message.Response: %+v, %v", plain, err)
	}
	c, err := outbox.DecodePayload(due[1].Payload)
	if err != nil || c.Upload == nil || c.Upload.Filename != "gmailtls-20260302-0800.png" || c.Title != "" {
		t.Fatalf("chart payload = %+v, %v", c, err)
	}
	// The picture of the three relays' heatmap, drawn before enqueuing.
	_, hm := commands.ReportMessage(summary(t))
	img, err := png.Decode(bytes.NewReader(c.Upload.PNG))
	if err != nil {
		t.Fatalf("the chart does not decode: %v", err)
	}
	if w, h := chart.Size(hm); len(hm.Relays) != 3 || img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Errorf("chart is %v, want %dx%d for %d relays", img.Bounds().Size(), w, h, len(hm.Relays))
	}
	if c.Upload.Title != hm.Title {
		t.Errorf("chart titled %q, want %q", c.Upload.Title, hm.Title)
	}
}

// TestTwoReportsToOneChannelInOneMinute: two [[report]] blocks posting to
// the same channel at the same minute (a daily 24h and a weekly 7-day
// summary at 08:00) both go out, each with its chart; each fired again in
// that minute (a restart) writes nothing more.
func TestTwoReportsToOneChannelInOneMinute(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 8, 0, 0, 300_000_000, time.UTC)
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	open := func() *storage.Store {
		s, err := storage.Open(ctx, path, storage.Options{Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run := func(s *storage.Store) {
		r := &Reporter{Store: s, Now: func() time.Time { return at },
			Build: func(context.Context, time.Duration) (message.Response, chart.Heatmap, error) {
				resp, hm := commands.ReportMessage(summary(t))
				return resp, hm, nil
			}}
		for _, w := range []time.Duration{24 * time.Hour, 7 * 24 * time.Hour} {
			if err := r.Report(ctx, "CREP", w); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := open()
	run(s)
	// A restart in the same minute fires both jobs again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	at = at.Add(40 * time.Second)
	run(s)

	due, err := s.DueMessages(ctx, at, 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range due {
		keys = append(keys, m.Key)
	}
	want := []string{
		"report:CREP:24h:2026-03-02T08:00Z", "report:CREP:24h:2026-03-02T08:00Z:chart",
		"report:CREP:168h:2026-03-02T08:00Z", "report:CREP:168h:2026-03-02T08:00Z:chart",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("outbox keys:\n got %v\nwant %v", keys, want)
	}
}

func TestReportKey(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 0, 59, 0, time.UTC)
	for w, want := range map[time.Duration]string{
		0:                "report:C1:24h:2026-03-02T08:00Z",
		24 * time.Hour:   "report:C1:24h:2026-03-02T08:00Z",
		90 * time.Minute: "report:C1:1h30m:2026-03-02T08:00Z",
		90 * time.Second: "report:C1:1m30s:2026-03-02T08:00Z",
	} {
		if got := ReportKey("C1", w, at); got != want {
			t.Errorf("ReportKey(%s) = %s, want %s", w, got, want)
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
