package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRenderDecodesWithExpectedSizeAndColours(t *testing.T) {
	start := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	h := Heatmap{
		Title:  "gmailtls: failure share per hour",
		Relays: []string{"relay-1", "relay-2-long-name"},
		Start:  start,
		Cells: [][]HourFigures{
			make([]HourFigures, 24),
			make([]HourFigures, 24),
		},
	}
	for i := range 24 {
		h.Cells[0][i] = HourFigures{Attempts: 12}
		h.Cells[1][i] = HourFigures{Attempts: 12}
	}
	h.Cells[1][5] = HourFigures{Attempts: 12, Failures: 12}
	h.Cells[1][6] = HourFigures{} // no probes

	b, err := Render(h)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("PNG does not decode: %v", err)
	}
	w, ht := Size(h)
	if got := img.Bounds().Size(); got.X != w || got.Y != ht {
		t.Fatalf("size %v, want %dx%d", got, w, ht)
	}
	if w != 2*margin+len("relay-2-long-name")*charWidth+labelPad+24*CellWidth {
		t.Fatalf("width %d does not follow the layout", w)
	}
	// The centre of each cell carries the cell's colour.
	at := func(r, c int) [3]uint32 {
		x := margin + labelWidth(h) + c*CellWidth + CellWidth/2
		y := margin + titleHeight + r*CellHeight + CellHeight/2
		cr, cg, cb, _ := img.At(x, y).RGBA()
		return [3]uint32{cr >> 8, cg >> 8, cb >> 8}
	}
	want := func(c HourFigures) [3]uint32 {
		col := CellColor(c)
		return [3]uint32{uint32(col.R), uint32(col.G), uint32(col.B)}
	}
	if at(0, 0) != want(HourFigures{Attempts: 1}) {
		t.Errorf("healthy cell is %v, want green", at(0, 0))
	}
	if at(1, 5) != want(HourFigures{Attempts: 1, Failures: 1}) {
		t.Errorf("failing cell is %v, want red", at(1, 5))
	}
	if at(1, 6) != want(HourFigures{}) {
		t.Errorf("empty cell is %v, want grey", at(1, 6))
	}
}

// labelPixels renders h and returns, per row, the pixels of its label.
func labelPixels(t *testing.T, h Heatmap) []string {
	t.Helper()
	b, err := Render(h)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(h.Relays))
	for r := range h.Relays {
		var px []byte
		y0 := margin + titleHeight + r*CellHeight
		for y := y0; y < y0+CellHeight; y++ {
			for x := margin; x < margin+labelWidth(h); x++ {
				v, _, _, _ := img.At(x, y).RGBA()
				px = append(px, byte(v>>8))
			}
		}
		out[r] = string(px)
	}
	return out
}

// TestRowLabelsStayDistinct: relays whose names differ only at the end
// (relay-001 … relay-099, or long names with a shared prefix) get row
// labels that look different in the PNG; the label column fits the
// longest name up to MaxLabelChars.
func TestRowLabelsStayDistinct(t *testing.T) {
	for _, tc := range []struct {
		name  string
		relay func(i int) string
		chars int
	}{
		{"numbered", func(i int) string { return fmt.Sprintf("relay-%03d", i) }, 9},
		{"shared prefix", func(i int) string { return fmt.Sprintf("mta-frankfurt-datacenter-2-outbound-%03d", i) }, MaxLabelChars},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Heatmap{Title: "t", Start: time.Unix(0, 0).UTC()}
			for i := 1; i <= 99; i++ {
				h.Relays = append(h.Relays, tc.relay(i))
				h.Cells = append(h.Cells, make([]HourFigures, 3))
			}
			if got := labelChars(h); got != tc.chars {
				t.Errorf("label column of %d characters, want %d", got, tc.chars)
			}
			if w, _ := Size(h); w != 2*margin+tc.chars*charWidth+labelPad+3*CellWidth {
				t.Errorf("width %d does not follow the label column", w)
			}
			seen := map[string]string{}
			for r, px := range labelPixels(t, h) {
				if prev, dup := seen[px]; dup {
					t.Fatalf("rows %s and %s draw the same label", prev, h.Relays[r])
				}
				seen[px] = h.Relays[r]
			}
		})
	}
}

func TestLabel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		width int
		want  string
	}{
		{"relay-001", 24, "relay-001"},
		{"mta-frankfurt-datacenter-2-outbound-001", 24, "mta-fra..-2-outbound-001"},
		{"mta-frankfurt-datacenter-2-outbound-001", 9, "mt..d-001"},
		{"abcdef", 2, "ef"},
	} {
		got := Label(tc.name, tc.width)
		if got != tc.want || utf8.RuneCountInString(got) > tc.width {
			t.Errorf("Label(%q, %d) = %q, want %q", tc.name, tc.width, got, tc.want)
		}
	}
}

func TestRenderRejectsBadShapes(t *testing.T) {
	if _, err := Render(Heatmap{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty heatmap: %v, want ErrEmpty", err)
	}
	_, err := Render(Heatmap{Relays: []string{"a", "b"}, Cells: [][]HourFigures{make([]HourFigures, 3), make([]HourFigures, 2)}})
	if err == nil {
		t.Error("ragged rows accepted")
	}
	_, err = Render(Heatmap{Relays: []string{"a"}, Cells: [][]HourFigures{make([]HourFigures, 3), make([]HourFigures, 3)}})
	if err == nil {
		t.Error("rows/relays mismatch accepted")
	}
}

func TestCellColourScale(t *testing.T) {
	cells := []HourFigures{{Attempts: 10}, {Attempts: 10, Failures: 1}, {Attempts: 10, Failures: 3}, {Attempts: 10, Failures: 6}, {Attempts: 10, Failures: 10}}
	seen := map[[3]uint8]bool{}
	for _, c := range cells {
		col := CellColor(c)
		seen[[3]uint8{col.R, col.G, col.B}] = true
	}
	if len(seen) != len(cells) {
		t.Errorf("%d distinct colours for %d failure shares", len(seen), len(cells))
	}
}

func BenchmarkRender(b *testing.B) {
	h := Heatmap{Title: "bench", Start: time.Unix(0, 0).UTC()}
	for i := range 40 {
		h.Relays = append(h.Relays, "relay-"+string(rune('a'+i%26)))
		row := make([]HourFigures, 24)
		for j := range row {
			row[j] = HourFigures{Attempts: 12, Failures: (i * j) % 13}
		}
		h.Cells = append(h.Cells, row)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(h); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHourFiguresJSON pins the JSON of the figures: the names gmailtls
// report --json shows ("hour", "attempts", "failures"), no hour for a
// padding cell, and a heatmap stored in the outbox by an earlier release,
// whose cells had no hour and capitalised names, still reads the same.
func TestHourFiguresJSON(t *testing.T) {
	hour := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	b, err := json.Marshal([]HourFigures{{Hour: hour, Attempts: 12, Failures: 3}, {}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"hour":"2026-03-02T10:00:00Z","attempts":12,"failures":3},{"attempts":0,"failures":0}]`; string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	old := `{"Title":"gmailtls — last 3h","Relays":["relay-1","relay-2"],"Start":"2026-03-02T08:00:00Z",
		"Cells":[[{"Attempts":12,"Failures":0},{"Attempts":0,"Failures":0}],[{"Attempts":12,"Failures":12},{"Attempts":6,"Failures":1}]]}`
	var h Heatmap
	if err := json.Unmarshal([]byte(old), &h); err != nil {
		t.Fatal(err)
	}
	want := [][]HourFigures{{{Attempts: 12}, {}}, {{Attempts: 12, Failures: 12}, {Attempts: 6, Failures: 1}}}
	if !reflect.DeepEqual(h.Cells, want) || len(h.Relays) != 2 || !h.Start.Equal(hour.Add(-2*time.Hour)) {
		t.Errorf("stored heatmap read as %+v", h)
	}
	if _, err := Render(h); err != nil {
		t.Errorf("stored heatmap does not render: %v", err)
	}
}
