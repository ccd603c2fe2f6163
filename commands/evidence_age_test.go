package commands

import (
	"testing"
	"time"
)

// TestAgeText: mail 27 s old reads "27s", not "0s" (the queue's oldest age
// was rounded to whole minutes).
func TestAgeText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		27 * time.Second:                 "27s",
		0:                                "0s",
		90 * time.Second:                 "2m",
		time.Hour + 5*time.Minute + 10e9: "1h5m",
	} {
		if got := ageText(d); got != want {
			t.Errorf("ageText(%s) = %q, want %q", d, got, want)
		}
	}
}
