package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/color"
	"image/png"
	"testing"
)

// storedFigures is a heatmap as the outbox stored a report's chart before
// it stored the picture: chart.Heatmap's JSON, with Go's field names.
const storedFigures = `{"Title":"gmailtls: failure share per relay and hour, last 3h","Relays":["relay-1","relay-2"],"Start":"2026-03-02T06:00:00Z","Cells":[[{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":1}],[{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":12},{"Attempts":0,"Failures":0}]]}`

func TestRenderJSONReadsStoredFigures(t *testing.T) {
	b, title, err := RenderJSON([]byte(storedFigures))
	if err != nil {
		t.Fatal(err)
	}
	if title != "gmailtls: failure share per relay and hour, last 3h" {
		t.Errorf("title %q", title)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	var h Heatmap
	if err := json.Unmarshal([]byte(storedFigures), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Relays) != 2 || len(h.Cells) != 2 || len(h.Cells[1]) != 3 {
		t.Fatalf("stored figures read as %+v", h)
	}
	if w, ht := Size(h); img.Bounds().Dx() != w || img.Bounds().Dy() != ht {
		t.Errorf("drawn %v, want %dx%d", img.Bounds().Size(), w, ht)
	}
	// relay-2's second hour failed every probe: red, as CellColor says.
	x := margin + labelWidth(h) + CellWidth + CellWidth/2
	y := margin + titleHeight + CellHeight + CellHeight/2
	if got, want := color.RGBAModel.Convert(img.At(x, y)), CellColor(h.Cells[1][1]); got != want || h.Cells[1][1].Failures != 12 {
		t.Errorf("relay-2's failed hour is %v, want %v", got, want)
	}
	if _, _, err := RenderJSON([]byte(`{"Title":`)); err == nil {
		t.Error("broken JSON drawn")
	}
	if _, _, err := RenderJSON([]byte(`{"Title":"empty"}`)); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty heatmap: %v", err)
	}
}
