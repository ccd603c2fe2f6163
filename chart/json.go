package chart

import (
	"encoding/json"
	"fmt"
)

// RenderJSON draws a Heatmap given as JSON, as the outbox stored a report's
// chart before it stored the picture itself, and returns the PNG and the
// heatmap's title. It reads those stored charts still waiting for delivery
// after an upgrade (outbox.Worker.DrawChart).
func RenderJSON(figures []byte) (png []byte, title string, err error) {
	var h Heatmap
	if err := json.Unmarshal(figures, &h); err != nil {
		return nil, "", fmt.Errorf("chart: the stored figures are not a heatmap: %w", err)
	}
	png, err = Render(h)
	return png, h.Title, err
}
