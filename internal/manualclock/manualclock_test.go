package manualclock

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := New(t0)
	if !c.Now().Equal(t0) {
		t.Fatal("New did not set the time")
	}
	c.Advance(90 * time.Second)
	if got := c.Now().Sub(t0); got != 90*time.Second {
		t.Errorf("Advance moved %v", got)
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Error("Set did not set the time")
	}
}
