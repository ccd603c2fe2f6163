package monitor

import (
	"testing"

	"github.com/gmailtls/gmailtls/chart"
)

func TestTrend(t *testing.T) {
	hours := []chart.HourFigures{{Attempts: 10}, {Attempts: 10}, {Attempts: 10, Failures: 8}, {}, {Attempts: 10, Failures: 1}, {Attempts: 10, Failures: 10}}
	if got := Trend(hours, 1); got != "▁▁▇·▂█" {
		t.Errorf("Trend = %q", got)
	}
	if got := Trend(hours, 2); got != "▁▇▅" {
		t.Errorf("Trend step 2 = %q", got)
	}
}
