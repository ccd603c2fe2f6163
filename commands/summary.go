package commands

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// Summary computes the health summary over the window ending now under the
// configuration in force (DefaultReportWindow when window is zero), shown
// in the handler's zone. It only reads.
func (h *Handler) Summary(ctx context.Context, window time.Duration) (monitor.SummaryModel, error) {
	return h.summary(ctx, h.snapshot(), window)
}

// summary is Summary under the request's snapshot.
func (h *Handler) summary(ctx context.Context, snap *monitor.Snapshot, window time.Duration) (monitor.SummaryModel, error) {
	if window <= 0 {
		window = DefaultReportWindow
	}
	m, err := h.svc.Summary(ctx, snap, window)
	m.Window, m.Location = FormatWindow(window), h.loc
	return m, err
}

// percent writes a success rate: "100%", "99.7%", "0%".
func percent(r float64) string {
	p := r * 100
	switch {
	case p >= 100:
		return "100%"
	case p >= 99.95:
		return "99.9%" // never round a failure away
	case p == math.Trunc(p):
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", math.Floor(p*10)/10)
}

// timeFormat formats times for one message.
type timeFormat struct {
	loc *time.Location
	now time.Time
}

func (f timeFormat) clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	lt := t.In(f.loc)
	now := f.now.In(f.loc)
	if lt.Year() != now.Year() || lt.YearDay() != now.YearDay() {
		return lt.Format("Jan 2 15:04")
	}
	return lt.Format("15:04")
}

func (f timeFormat) stamp(t time.Time) string {
	return t.In(f.loc).Format("2006-01-02 15:04 MST")
}

// SummaryResponse shows a SummaryModel: the level across relays, then per
// relay two lines (level, success rate, median handshake; trend, failures
// by class, last failure), a legend for the trend, and open incidents.
func SummaryResponse(m monitor.SummaryModel) message.Response {
	loc := m.Location
	if loc == nil {
		loc = time.Local
	}
	at := m.At
	if at.IsZero() {
		at = m.Until
	}
	tf := timeFormat{loc: loc, now: at}
	clean, probed := 0, 0
	var lines []string
	for _, r := range m.Relays {
		if r.Attempts > 0 {
			probed++
			if r.Failures == 0 {
				clean++
			}
		}
		head := fmt.Sprintf("%s %s · %s", levelMark(r.Level), r.Relay, levelText(r.Level, r.Scope))
		if r.SuccessRate != nil {
			head += fmt.Sprintf(" · %s of %s passed", percent(*r.SuccessRate), plural(r.Attempts, "probe"))
		} else {
			head += " · no probes"
		}
		if r.MedianHandshakeMS > 0 {
			head += " · median handshake " + message.Ms(r.MedianHandshakeMS)
		}
		if r.OpenIncidents > 0 {
			head += fmt.Sprintf(" · %d open incident", r.OpenIncidents)
			if r.OpenIncidents > 1 {
				head += "s"
			}
		}
		detail := "    " + r.Trend
		if len(r.ByClass) > 0 {
			detail += " · " + classCounts(r.ByClass)
		}
		if r.LastFailure != nil {
			detail += " · last failure " + tf.clock(*r.LastFailure) + " " + r.LastFailureClass
		}
		lines = append(lines, head, detail)
	}
	resp := message.Response{Verdict: levelVerdict(m.Global.Level)}
	resp.Title = fmt.Sprintf("gmailtls report, last %s: %d of %d relays without a failure", m.Window, clean, len(m.Relays))
	if probed < len(m.Relays) {
		resp.Title += fmt.Sprintf(" (%d not probed)", len(m.Relays)-probed)
	}
	if m.Global.Level != escalation.LevelOK && m.Global.Level != "" {
		resp.Title += "; level " + string(m.Global.Level)
	}
	resp.Summary = fmt.Sprintf("%d/%d relays clean over %s; global level %s", clean, len(m.Relays), m.Window, m.Global.Level)
	g := message.Section{Heading: "Across relays", Fields: []message.Field{{Label: "Level", Value: levelText(m.Global.Level, m.Global.Scope)}}}
	if m.Global.Advice != "" {
		g.Fields = append(g.Fields, message.Field{Label: "Advice", Value: m.Global.Advice})
	}
	resp.Sections = append(resp.Sections, g)
	if len(lines) == 0 {
		resp.Sections = append(resp.Sections, message.Section{Lines: []string{"no relays configured"}})
	}
	resp.Sections = append(resp.Sections, chunkLines("Relays", lines, 20)...)
	step := "hour"
	if m.TrendStep > time.Hour {
		step = fmt.Sprintf("%d hours", int(m.TrendStep/time.Hour))
	}
	resp.Sections = append(resp.Sections, message.Section{Lines: []string{
		fmt.Sprintf("Trend: one character per %s since %s, oldest first, the last one still running: ▁ no failure, ▂…█ a growing share of failures, · no probes.", step, tf.clock(m.Since)),
	}})
	resp.Sections = append(resp.Sections, incidentSections(m.OpenIncidents, tf.clock)...)
	resp.Context = fmt.Sprintf("%s to %s", tf.stamp(m.Since), tf.stamp(m.Until))
	return resp
}

// SummaryResponse is the package function SummaryResponse, for symmetry
// with the handler's other responses.
func (h *Handler) SummaryResponse(m monitor.SummaryModel) message.Response { return SummaryResponse(m) }

// plural is "1 probe", "2 probes".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
