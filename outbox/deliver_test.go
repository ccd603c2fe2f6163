package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// withReplies is a Response that goes out as a main message and n replies
// in its thread.
func withReplies(title string, n int) message.Response {
	r := message.Response{Title: title}
	for i := range n {
		r.Thread = append(r.Thread, message.Response{Title: fmt.Sprintf("%s, reply %d", title, i+1)})
	}
	return r
}

// TestMultiPartMessageRenderedOnce: a message of several parts is rendered
// once per delivery, not once per part; a delivery that fails half-way
// renders it again only for the retry, which resumes with the first part
// missing, so every part goes out once, in order, in the main message's
// thread.
func TestMultiPartMessageRenderedOnce(t *testing.T) {
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now}
	w := &Worker{Store: s, Sender: send, Now: c.Now, MinBackoff: time.Second}

	put(t, s, Message{Key: "report:1", Kind: storage.KindReport, Channel: "C1", Payload: Payload{Response: withReplies("report:1", 5)}})
	if n, err := w.Drain(context.Background()); err != nil || n != 1 {
		t.Fatalf("drain delivered %d (%v)", n, err)
	}
	if got := send.renderCount(); got != 1 {
		t.Errorf("a message of 6 parts was rendered %d times, want once", got)
	}
	if got := len(send.delivered()); got != 6 {
		t.Errorf("%d parts posted, want 6", got)
	}

	// report:2's third part fails once: its retry renders it once more
	// and resumes with that part.
	w.Sender = &failNth{fakeSender: send, n: 3}
	put(t, s, Message{Key: "report:2", Kind: storage.KindReport, Channel: "C1", Payload: Payload{Response: withReplies("report:2", 3)}})
	before := len(send.all())
	drainUntil(t, w, s, c, time.Second, 10)
	if got := send.renderCount() - 1; got != 2 {
		t.Errorf("report:2 was rendered %d times in 2 deliveries, want twice", got)
	}
	calls := send.all()[before:]
	if len(calls) != 5 {
		t.Fatalf("%d calls for report:2, want its 4 parts and the failed one: %+v", len(calls), calls)
	}
	var parts []int
	for _, a := range calls {
		if a.err != nil {
			continue
		}
		parts = append(parts, a.part)
		if a.part > 0 && a.threadTS != calls[0].ts {
			t.Errorf("part %d in thread %q, want the main message's %q", a.part, a.threadTS, calls[0].ts)
		}
	}
	if !slices.Equal(parts, []int{0, 1, 2, 3}) {
		t.Errorf("parts posted %v, want [0 1 2 3], each once", parts)
	}
}

// failNth fails the n-th post it sees (from 1) with a server error.
type failNth struct {
	*fakeSender
	n, seen int
}

func (f *failNth) Post(ctx context.Context, channel, threadTS string, p Part) (string, error) {
	f.seen++
	if f.seen == f.n {
		f.mu.Lock()
		f.attempts = append(f.attempts, attempt{part: p.(fakePart).part, channel: channel, threadTS: threadTS, at: f.now(), err: errServer})
		f.mu.Unlock()
		return "", errServer
	}
	return f.fakeSender.Post(ctx, channel, threadTS, p)
}

// oldChartPayload is a chart message as the release before the upload
// field stored it (outbox.Payload{WithChart, Chart: &chart.Heatmap{…},
// Filename}.Encode()), byte for byte.
const oldChartPayload = `{"Title":"","Verdict":"","Summary":"","Sections":null,"Buttons":null,"Context":"","Ephemeral":false,"ReplaceOriginal":false,"Thread":null,"with_chart":true,"chart":{"Title":"gmailtls: failure share per relay and hour, last 3h","Relays":["relay-1","relay-2"],"Start":"2026-03-02T06:00:00Z","Cells":[[{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":1}],[{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":12},{"Attempts":0,"Failures":0}]]},"filename":"gmailtls-20260302-0900.png"}`

// TestOldChartPayloadIsDelivered: a chart enqueued by the previous release
// and still pending after the upgrade decodes, is drawn from its figures
// by DrawChart and uploaded under its stored file name, in its report's
// thread.
func TestOldChartPayloadIsDelivered(t *testing.T) {
	p, err := DecodePayload([]byte(oldChartPayload))
	if err != nil || !p.WithChart || p.Filename != "gmailtls-20260302-0900.png" || p.Upload != nil || !p.isUpload() {
		t.Fatalf("old chart payload decodes as %+v, %v", p, err)
	}
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now}
	var drawn [][]byte
	w := &Worker{Store: s, Sender: send, Now: c.Now, DrawChart: func(figures []byte) ([]byte, string, error) {
		drawn = append(drawn, figures)
		var hm struct {
			Title  string
			Relays []string
			Cells  [][]struct{ Attempts, Failures int }
		}
		if err := json.Unmarshal(figures, &hm); err != nil {
			return nil, "", err
		}
		return fmt.Appendf(nil, "PNG of %d relays, %d failures in the last hour of relay-1", len(hm.Relays), hm.Cells[0][2].Failures), hm.Title, nil
	}}
	put(t, s, Message{Key: "report:CREP", Kind: storage.KindReport, Channel: "CREP", Payload: Payload{Response: message.Response{Title: "Health summary"}}})
	if _, _, err := s.Enqueue(context.Background(), storage.OutboxMessage{Key: "report:CREP:chart", Kind: storage.KindReport,
		Channel: "CREP", ThreadKey: "report:CREP", Payload: []byte(oldChartPayload)}); err != nil {
		t.Fatal(err)
	}
	drainUntil(t, w, s, c, time.Second, 5)

	all := send.all()
	if len(drawn) != 1 || len(all) != 2 || all[1].upload == nil {
		t.Fatalf("drawn %d times, calls %+v; want the report, then one upload", len(drawn), all)
	}
	u := all[1].upload
	if u.Filename != "gmailtls-20260302-0900.png" || u.Title != "gmailtls: failure share per relay and hour, last 3h" ||
		string(u.PNG) != "PNG of 2 relays, 1 failures in the last hour of relay-1" {
		t.Errorf("uploaded %q titled %q: %q", u.Filename, u.Title, u.PNG)
	}
	if all[1].threadTS != all[0].ts || all[1].channel != "CREP" {
		t.Errorf("upload in %s thread %q, want CREP thread %q", all[1].channel, all[1].threadTS, all[0].ts)
	}
	m, _, err := s.MessageByKey(context.Background(), "report:CREP:chart")
	if err != nil || m.State != storage.OutboxSent {
		t.Errorf("old chart message is %s (%v), want sent", m.State, err)
	}
}

// TestUndrawableChartLeftOut: a chart that cannot be drawn (no DrawChart,
// or it fails) is left out with a warning; the report stands.
func TestUndrawableChartLeftOut(t *testing.T) {
	for _, draw := range []DrawChart{nil, func([]byte) ([]byte, string, error) { return nil, "", errors.New("too many rows") }} {
		c := newClock()
		s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
		send := &fakeSender{now: c.Now}
		var logs bytes.Buffer
		w := &Worker{Store: s, Sender: send, Now: c.Now, DrawChart: draw, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		if _, _, err := s.Enqueue(context.Background(), storage.OutboxMessage{Key: "chart", Kind: storage.KindReport,
			Channel: "CREP", Payload: []byte(oldChartPayload)}); err != nil {
			t.Fatal(err)
		}
		drainUntil(t, w, s, c, time.Second, 2)
		if n := len(send.all()); n != 0 {
			t.Errorf("%d calls for a chart that cannot be drawn", n)
		}
		if !strings.Contains(logs.String(), "the report stands without it") {
			t.Errorf("no warning:\n%s", logs.String())
		}
	}
}

// TestUploadPayload: a chart as producers now enqueue it, its picture
// drawn, round-trips through the stored JSON and is uploaded as it is.
func TestUploadPayload(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00 image bytes")
	b, err := Payload{Upload: &Upload{Filename: "gmailtls-20260302-0900.png", Title: "last 6h", PNG: png}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodePayload(b)
	if err != nil || p.Upload == nil || !bytes.Equal(p.Upload.PNG, png) || p.Upload.Title != "last 6h" || p.WithChart {
		t.Fatalf("round trip of %s = %+v, %v", b, p, err)
	}
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now}
	w := &Worker{Store: s, Sender: send, Now: c.Now}
	put(t, s, Message{Key: "chart", Kind: storage.KindReport, Channel: "CREP", Payload: p})
	drainUntil(t, w, s, c, time.Second, 2)
	if all := send.all(); len(all) != 1 || all[0].upload == nil || !bytes.Equal(all[0].upload.PNG, png) || all[0].upload.Filename != "gmailtls-20260302-0900.png" {
		t.Errorf("calls %+v, want the upload", all)
	}
}

// scopeSender refuses uploads for want of a scope.
type scopeSender struct{ *fakeSender }

var errNoFilesWrite = errors.New("slack: files.getUploadURLExternal failed: missing_scope")

func (s scopeSender) Upload(context.Context, string, string, Upload) error { return errNoFilesWrite }

func (s scopeSender) Classify(err error) Class {
	if errors.Is(err, errNoFilesWrite) {
		return Class{MissingScope: true, Suspended: true}
	}
	return s.fakeSender.Classify(err)
}

// TestUploadWithoutScopeLeavesANote: an upload refused for a missing scope
// is neither retried nor a reason to pause delivery: the message counts as
// delivered and a note saying why goes to the report's thread, once per
// channel.
func TestUploadWithoutScopeLeavesANote(t *testing.T) {
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now}
	w := &Worker{Store: s, Sender: scopeSender{send}, Now: c.Now}
	chart := Payload{Upload: &Upload{Filename: "x.png", PNG: []byte("png")}}
	put(t, s, Message{Key: "report:1", Kind: storage.KindReport, Channel: "CREP"})
	put(t, s, Message{Key: "report:1:chart", Kind: storage.KindReport, Channel: "CREP", ThreadKey: "report:1", Payload: chart})
	put(t, s, Message{Key: "report:2", Kind: storage.KindReport, Channel: "CREP"})
	put(t, s, Message{Key: "report:2:chart", Kind: storage.KindReport, Channel: "CREP", ThreadKey: "report:2", Payload: chart})
	drainUntil(t, w, s, c, time.Second, 5)

	if !w.PausedUntil().IsZero() {
		t.Errorf("a refused upload paused delivery until %s", w.PausedUntil())
	}
	var notes []attempt
	for _, a := range send.delivered() {
		if a.key == "Chart not posted" {
			notes = append(notes, a)
		}
	}
	if len(notes) != 1 || notes[0].threadTS != send.delivered()[0].ts {
		t.Errorf("notes %+v, want one in report:1's thread", notes)
	}
	if _, _, failed, err := s.OutboxStats(context.Background(), c.Now()); err != nil || failed != 0 {
		t.Errorf("%d failed (%v), want none", failed, err)
	}
}
