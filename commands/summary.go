package commands

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// SummaryModel is the health summary over a window: what /gmailtls report,
// the console's report and the scheduled reports show.
type SummaryModel struct {
	// At is when the summary was made; the window ends with its hour.
	At     time.Time `json:"at"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Window string    `json:"window"`
	// TrendStep is how much time one character of a trend covers (one
	// hour, or more for windows over two days).
	TrendStep     time.Duration    `json:"-"`
	TrendStepS    float64          `json:"trend_step_s"`
	Global        GlobalStatus     `json:"global"`
	Relays        []RelayHealth    `json:"relays"`
	OpenIncidents []IncidentStatus `json:"open_incidents"`
	// Location is the zone times are shown in.
	Location *time.Location `json:"-"`
}

// RelayHealth is one relay over the window.
type RelayHealth struct {
	Relay string           `json:"relay"`
	Level escalation.Level `json:"level"`
	Scope escalation.Scope `json:"scope,omitempty"`
	// Attempts and Failures count probe results (one per MX × IP × source).
	Attempts int `json:"attempts"`
	Failures int `json:"failures"`
	// SuccessRate is the share of attempts that passed, nil without any.
	SuccessRate       *float64       `json:"success_rate"`
	ByClass           map[string]int `json:"failures_by_class"`
	MedianHandshakeMS float64        `json:"median_handshake_ms"`
	LastFailure       *time.Time     `json:"last_failure"`
	LastFailureClass  string         `json:"last_failure_class,omitempty"`
	OpenIncidents     int            `json:"open_incidents"`
	// Trend has one character per TrendStep, oldest first: ▁ for no
	// failures up to █ for all failed, · for no probes.
	Trend string `json:"trend"`
	// Hourly are the figures of every hour of the window, as storage
	// summarised them and as the report's heatmap draws them.
	Hourly []chart.HourFigures `json:"hourly"`
}

// trendChars draws a failure share: index 0 is no failures, 7 all failed.
var trendChars = []rune("▁▂▃▄▅▆▇█")

// noProbes marks a trend step without any probe.
const noProbes = '·'

// maxTrend bounds a trend's length; longer windows merge hours.
const maxTrend = 48

// Trend draws hourly figures, merging step hours per character.
func Trend(hours []chart.HourFigures, step int) string {
	if step < 1 {
		step = 1
	}
	var b strings.Builder
	for i := 0; i < len(hours); i += step {
		att, fail := 0, 0
		for _, h := range hours[i:min(i+step, len(hours))] {
			att += h.Attempts
			fail += h.Failures
		}
		b.WriteRune(trendChar(att, fail))
	}
	return b.String()
}

func trendChar(attempts, failures int) rune {
	if attempts <= 0 {
		return noProbes
	}
	if failures <= 0 {
		return trendChars[0]
	}
	share := float64(failures) / float64(attempts)
	i := 1 + int(math.Floor(share*float64(len(trendChars)-1)-1e-9))
	i = max(1, min(i, len(trendChars)-1))
	if failures >= attempts {
		i = len(trendChars) - 1
	}
	return trendChars[i]
}

// Summary computes the health summary over the window ending now: per relay
// its level, success rate, failures by class, median handshake time, last
// failure, open incidents and the hourly trend. It only reads.
func (h *Handler) Summary(ctx context.Context, window time.Duration) (SummaryModel, error) {
	return h.summary(ctx, h.snapshot(), window)
}

// summary is Summary under the request's snapshot.
func (h *Handler) summary(ctx context.Context, snap *monitor.Snapshot, window time.Duration) (SummaryModel, error) {
	if window <= 0 {
		window = DefaultReportWindow
	}
	// The window ends with the current hour, so that each trend character
	// is one clock hour and the last one the hour in progress.
	now := h.now()
	until := now.Truncate(time.Hour).Add(time.Hour)
	since := until.Add(-window)
	a, err := h.svc.Assess(ctx, snap)
	if err != nil {
		return SummaryModel{}, err
	}
	sums, err := h.store.Summary(ctx, since, until)
	if err != nil {
		return SummaryModel{}, err
	}
	incidents, err := h.store.OpenIncidents(ctx)
	if err != nil {
		return SummaryModel{}, err
	}
	hours := int(until.Sub(since) / time.Hour)
	step := 1
	if hours > maxTrend {
		step = (hours + maxTrend - 1) / maxTrend
	}
	m := SummaryModel{
		At:            now,
		Since:         since,
		Until:         until,
		Window:        FormatWindow(window),
		TrendStep:     time.Duration(step) * time.Hour,
		TrendStepS:    (time.Duration(step) * time.Hour).Seconds(),
		Relays:        []RelayHealth{},
		OpenIncidents: []IncidentStatus{},
		Location:      h.loc,
		Global:        globalStatus(a.Global),
	}
	openBy := map[string]int{}
	for _, in := range incidents {
		openBy[in.Relay]++
		m.OpenIncidents = append(m.OpenIncidents, incidentStatus(in, now))
	}
	for _, s := range sums {
		if _, ok := snap.Runners[s.Relay]; !ok && s.Attempts == 0 {
			continue
		}
		st, _ := a.Relay(s.Relay)
		rh := RelayHealth{
			Relay:             s.Relay,
			Level:             escalation.Max(st.Level),
			Scope:             st.Scope,
			Attempts:          s.Attempts,
			Failures:          s.Failures,
			ByClass:           s.ByClass,
			MedianHandshakeMS: math.Round(s.MedianHandshakeMS*10) / 10,
			OpenIncidents:     openBy[s.Relay],
		}
		if rh.ByClass == nil {
			rh.ByClass = map[string]int{}
		}
		if s.Attempts > 0 {
			rate := float64(s.Attempts-s.Failures) / float64(s.Attempts)
			rh.SuccessRate = &rate
		}
		if !s.LastFailure.IsZero() {
			rh.LastFailure = timePtr(s.LastFailure)
			rh.LastFailureClass = s.LastFailureClass
		}
		rh.Hourly = s.Hourly
		rh.Trend = Trend(rh.Hourly, step)
		m.Relays = append(m.Relays, rh)
	}
	return m, nil
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
func SummaryResponse(m SummaryModel) message.Response {
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
func (h *Handler) SummaryResponse(m SummaryModel) message.Response { return SummaryResponse(m) }

// plural is "1 probe", "2 probes".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
