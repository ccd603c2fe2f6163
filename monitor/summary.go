package monitor

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/escalation"
)

// SummaryModel is the health summary over a window: what /gmailtls report,
// the console's report and the scheduled reports show.
type SummaryModel struct {
	// At is when the summary was made; the window ends with its hour.
	At    time.Time `json:"at"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Window is the window as /gmailtls report writes it ("24h", "7d"),
	// set by the presenter.
	Window string `json:"window"`
	// TrendStep is how much time one character of a trend covers (one
	// hour, or more for windows over two days).
	TrendStep     time.Duration    `json:"-"`
	TrendStepS    float64          `json:"trend_step_s"`
	Global        GlobalStatus     `json:"global"`
	Relays        []RelayHealth    `json:"relays"`
	OpenIncidents []IncidentStatus `json:"open_incidents"`
	// Location is the zone times are shown in, set by the presenter.
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

// Summary computes the health summary over the window ending now under
// snap: per relay its level, success rate, failures by class, median
// handshake time, last failure, open incidents and the hourly trend. It
// only reads. Window and Location, how the summary is shown, are left to
// the presenter.
func (mon *Monitor) Summary(ctx context.Context, snap *Snapshot, window time.Duration) (SummaryModel, error) {
	if window <= 0 {
		return SummaryModel{}, fmt.Errorf("a summary needs a window, not %s", window)
	}
	// The window ends with the current hour, so that each trend character
	// is one clock hour and the last one the hour in progress.
	now := mon.now()
	until := now.Truncate(time.Hour).Add(time.Hour)
	since := until.Add(-window)
	a, err := mon.Assess(ctx, snap)
	if err != nil {
		return SummaryModel{}, err
	}
	sums, err := mon.store.Summary(ctx, since, until)
	if err != nil {
		return SummaryModel{}, err
	}
	incidents, err := mon.store.OpenIncidents(ctx)
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
		TrendStep:     time.Duration(step) * time.Hour,
		TrendStepS:    (time.Duration(step) * time.Hour).Seconds(),
		Relays:        []RelayHealth{},
		OpenIncidents: []IncidentStatus{},
		Global:        NewGlobalStatus(a.Global),
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
