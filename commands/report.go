package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// ReportMessage turns a summary into the report message and its heatmap
// (relays × hours, oldest hour first; rows padded to the same length).
func ReportMessage(m monitor.SummaryModel) (message.Response, chart.Heatmap) {
	resp := SummaryResponse(m)
	hm := chart.Heatmap{Title: fmt.Sprintf("gmailtls: failure share per relay and hour, last %s", m.Window)}
	width := 0
	for _, r := range m.Relays {
		width = max(width, len(r.Hourly))
	}
	for _, r := range m.Relays {
		if len(r.Hourly) > 0 && (hm.Start.IsZero() || r.Hourly[0].Hour.Before(hm.Start)) {
			hm.Start = r.Hourly[0].Hour
		}
	}
	if width == 0 {
		return resp, hm
	}
	for _, r := range m.Relays {
		row := make([]chart.HourFigures, width)
		// Right-align: every row ends with the current hour.
		copy(row[width-len(r.Hourly):], r.Hourly)
		hm.Relays = append(hm.Relays, r.Relay)
		hm.Cells = append(hm.Cells, row)
	}
	return resp, hm
}

// Report computes the health summary over window and presents it as the
// scheduled report: the message and its heatmap (schedule.Reporter's Build).
func (h *Handler) Report(ctx context.Context, window time.Duration) (message.Response, chart.Heatmap, error) {
	m, err := h.Summary(ctx, window)
	if err != nil {
		return message.Response{}, chart.Heatmap{}, err
	}
	resp, hm := ReportMessage(m)
	return resp, hm, nil
}
