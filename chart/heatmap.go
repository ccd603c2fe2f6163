// Package chart draws the health summary's heatmap: relays down the side,
// hours across, each cell coloured by the share of failed probes in that
// hour. Figures come in, PNG bytes go out; nothing here knows Slack or SQL.
//
// It is a leaf: it imports no other package of gmailtls. Its input type
// HourFigures is therefore the one type of hourly figures of the project:
// storage's summaries return it and commands' health summary shows it, so
// the figures travel from SQL to the picture without being copied from one
// identical type into another, and the imports stay one-way (storage and
// commands import chart, chart imports neither).
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"time"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// HourFigures is one hour of a relay's probes: how many were made and how
// many of them failed. It is a cell of the heatmap and an hour of the
// health summary (gmailtls report --json shows it with these JSON names).
type HourFigures struct {
	// Hour is the start of the hour (UTC from storage). Render places a
	// cell by its column, so a heatmap's padding cells leave it zero.
	Hour     time.Time `json:"hour,omitzero"`
	Attempts int       `json:"attempts"`
	Failures int       `json:"failures"`
}

// Heatmap is the input of Render: one row per relay, one column per hour.
type Heatmap struct {
	Title  string
	Relays []string
	// Start is the beginning of the first hour column.
	Start time.Time
	// Cells[r][h] is relay r in hour h; every row has the same length.
	Cells [][]HourFigures
}

// Layout constants, in pixels.
const (
	CellWidth   = 14
	CellHeight  = 18
	charWidth   = 7  // basicfont.Face7x13
	labelPad    = 12 // between the labels and the first column
	titleHeight = 24
	axisHeight  = 20
	margin      = 8
	maxColumns  = 24 * 31
	maxRows     = 500
)

// The row labels' column is as wide as the longest relay name, from
// MinLabelChars (the column never narrows below the old fixed width) to
// MaxLabelChars; a longer name is shortened in the middle (see Label).
const (
	MinLabelChars = 8
	MaxLabelChars = 24
)

// labelSep marks the cut in a shortened label. The font has ASCII only
// (an ellipsis character would draw as a replacement box).
const labelSep = ".."

// labelChars is the width, in characters, of h's label column.
func labelChars(h Heatmap) int {
	n := MinLabelChars
	for _, r := range h.Relays {
		n = max(n, utf8.RuneCountInString(r))
	}
	return min(n, MaxLabelChars)
}

func labelWidth(h Heatmap) int { return labelChars(h)*charWidth + labelPad }

// Label is name as a row label of at most width characters: whole when it
// fits, else a third of the room for its start and two thirds for its
// end, around "..", so that relay names that differ only at the end (a
// shared prefix, a numbered suffix) stay apart.
func Label(name string, width int) string {
	r := []rune(name)
	if len(r) <= width {
		return name
	}
	if width <= len(labelSep) {
		return string(r[len(r)-width:])
	}
	keep := width - len(labelSep)
	head := keep / 3
	tail := keep - head
	return string(r[:head]) + labelSep + string(r[len(r)-tail:])
}

// ErrEmpty is returned for a heatmap with no relays or no hours.
var ErrEmpty = errors.New("chart: nothing to draw (no relays or no hours)")

// Size returns the pixel size Render produces for h.
func Size(h Heatmap) (width, height int) {
	cols := 0
	if len(h.Cells) > 0 {
		cols = len(h.Cells[0])
	}
	return margin*2 + labelWidth(h) + cols*CellWidth, margin*2 + titleHeight + len(h.Relays)*CellHeight + axisHeight
}

// Render draws h as a PNG.
func Render(h Heatmap) ([]byte, error) {
	if len(h.Relays) == 0 || len(h.Cells) == 0 || len(h.Cells[0]) == 0 {
		return nil, ErrEmpty
	}
	if len(h.Cells) != len(h.Relays) {
		return nil, fmt.Errorf("chart: %d relays but %d rows of cells", len(h.Relays), len(h.Cells))
	}
	cols := len(h.Cells[0])
	if cols > maxColumns || len(h.Relays) > maxRows {
		return nil, fmt.Errorf("chart: %d×%d cells is more than a chart can show (at most %d relays × %d hours)", len(h.Relays), cols, maxRows, maxColumns)
	}
	for i, row := range h.Cells {
		if len(row) != cols {
			return nil, fmt.Errorf("chart: row %d (%s) has %d hours, want %d", i, h.Relays[i], len(row), cols)
		}
	}
	w, ht := Size(h)
	img := image.NewRGBA(image.Rect(0, 0, w, ht))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)

	text := func(x, y int, s string, c color.Color) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	ink := color.RGBA{0x22, 0x22, 0x22, 0xff}
	text(margin, margin+14, h.Title, ink)

	top := margin + titleHeight
	left := margin + labelWidth(h)
	chars := labelChars(h)
	for r, name := range h.Relays {
		y := top + r*CellHeight
		text(margin, y+13, Label(name, chars), ink)
		for c, cell := range h.Cells[r] {
			x := left + c*CellWidth
			rect := image.Rect(x+1, y+1, x+CellWidth-1, y+CellHeight-1)
			draw.Draw(img, rect, image.NewUniform(CellColor(cell)), image.Point{}, draw.Src)
		}
	}
	// Hour ticks every 6 columns, labelled with the hour of day (UTC or the
	// zone of Start).
	axisY := top + len(h.Relays)*CellHeight + 14
	for c := 0; c < cols; c += 6 {
		t := h.Start.Add(time.Duration(c) * time.Hour)
		text(left+c*CellWidth, axisY, t.Format("15h"), ink)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("chart: encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// CellColor maps a cell to its colour: grey for no probes, green for all
// passed, through yellow to red as the failure share grows.
func CellColor(c HourFigures) color.RGBA {
	if c.Attempts <= 0 {
		return color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	}
	share := float64(c.Failures) / float64(c.Attempts)
	switch {
	case share <= 0:
		return color.RGBA{0x2e, 0xa0, 0x43, 0xff}
	case share < 0.25:
		return color.RGBA{0xb8, 0xd8, 0x4a, 0xff}
	case share < 0.5:
		return color.RGBA{0xf2, 0xc1, 0x2e, 0xff}
	case share < 1:
		return color.RGBA{0xef, 0x7d, 0x22, 0xff}
	default:
		return color.RGBA{0xd6, 0x29, 0x29, 0xff}
	}
}
