package chart

import (
	"bytes"
	"errors"
	"image/png"
	"testing"
	"time"
)

func TestRenderDecodesWithExpectedSizeAndColours(t *testing.T) {
	start := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	h := Heatmap{
		Title:  "gmailtls: failure share per hour",
		Relays: []string{"relay-1", "relay-2-long-name"},
		Start:  start,
		Cells: [][]Cell{
			make([]Cell, 24),
			make([]Cell, 24),
		},
	}
	for i := range 24 {
		h.Cells[0][i] = Cell{Attempts: 12}
		h.Cells[1][i] = Cell{Attempts: 12}
	}
	h.Cells[1][5] = Cell{Attempts: 12, Failures: 12}
	h.Cells[1][6] = Cell{} // no probes

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
	if w != 2*margin+labelWidth+24*CellWidth {
		t.Fatalf("width %d does not follow the layout", w)
	}
	// The centre of each cell carries the cell's colour.
	at := func(r, c int) [3]uint32 {
		x := margin + labelWidth + c*CellWidth + CellWidth/2
		y := margin + titleHeight + r*CellHeight + CellHeight/2
		cr, cg, cb, _ := img.At(x, y).RGBA()
		return [3]uint32{cr >> 8, cg >> 8, cb >> 8}
	}
	want := func(c Cell) [3]uint32 {
		col := CellColor(c)
		return [3]uint32{uint32(col.R), uint32(col.G), uint32(col.B)}
	}
	if at(0, 0) != want(Cell{Attempts: 1}) {
		t.Errorf("healthy cell is %v, want green", at(0, 0))
	}
	if at(1, 5) != want(Cell{Attempts: 1, Failures: 1}) {
		t.Errorf("failing cell is %v, want red", at(1, 5))
	}
	if at(1, 6) != want(Cell{}) {
		t.Errorf("empty cell is %v, want grey", at(1, 6))
	}
}

func TestRenderRejectsBadShapes(t *testing.T) {
	if _, err := Render(Heatmap{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty heatmap: %v, want ErrEmpty", err)
	}
	_, err := Render(Heatmap{Relays: []string{"a", "b"}, Cells: [][]Cell{make([]Cell, 3), make([]Cell, 2)}})
	if err == nil {
		t.Error("ragged rows accepted")
	}
	_, err = Render(Heatmap{Relays: []string{"a"}, Cells: [][]Cell{make([]Cell, 3), make([]Cell, 3)}})
	if err == nil {
		t.Error("rows/relays mismatch accepted")
	}
}

func TestCellColourScale(t *testing.T) {
	cells := []Cell{{Attempts: 10}, {Attempts: 10, Failures: 1}, {Attempts: 10, Failures: 3}, {Attempts: 10, Failures: 6}, {Attempts: 10, Failures: 10}}
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
		row := make([]Cell, 24)
		for j := range row {
			row[j] = Cell{Attempts: 12, Failures: (i * j) % 13}
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
