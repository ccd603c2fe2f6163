package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without relying on the host's zoneinfo

	"github.com/robfig/cron/v3"
)

func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

// TestSpecNext pins what the configured specs mean, on fixed times:
// descriptors, five-field specs, CRON_TZ, and the two DST changes of
// Europe/Berlin in 2026 (29 March 02:00 → 03:00, 25 October 03:00 → 02:00).
func TestSpecNext(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string
		from time.Time
		want []time.Time // the next runs, in order
	}{
		{"probing default", "@every 5m", utc(2026, 3, 2, 9, 1), []time.Time{utc(2026, 3, 2, 9, 6), utc(2026, 3, 2, 9, 11)}},
		{"hourly", "@hourly", utc(2026, 3, 2, 9, 1), []time.Time{utc(2026, 3, 2, 10, 0), utc(2026, 3, 2, 11, 0)}},
		{"daily", "@daily", utc(2026, 3, 2, 9, 1), []time.Time{utc(2026, 3, 3, 0, 0)}},
		{"weekdays at 9 UTC from a Friday", "CRON_TZ=UTC 0 9 * * 1-5", utc(2026, 3, 6, 10, 0),
			[]time.Time{utc(2026, 3, 9, 9, 0), utc(2026, 3, 10, 9, 0)}},
		{"every minute", "@every 1m", utc(2026, 3, 2, 9, 0), []time.Time{utc(2026, 3, 2, 9, 1), utc(2026, 3, 2, 9, 2)}},
		{"retention", DefaultRetention, utc(2026, 3, 2, 9, 1), []time.Time{utc(2026, 3, 2, 10, 1), utc(2026, 3, 2, 11, 1)}},
		// 09:00 Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
		{"Berlin 9:00 across spring DST", "CRON_TZ=Europe/Berlin 0 9 * * *", utc(2026, 3, 27, 12, 0),
			[]time.Time{utc(2026, 3, 28, 8, 0), utc(2026, 3, 29, 7, 0), utc(2026, 3, 30, 7, 0)}},
		{"Berlin 9:00 across autumn DST", "CRON_TZ=Europe/Berlin 0 9 * * *", utc(2026, 10, 24, 12, 0),
			[]time.Time{utc(2026, 10, 25, 8, 0), utc(2026, 10, 26, 8, 0)}},
		// robfig/cron skips a local time that does not exist (02:30 on
		// 29 March) and runs twice at one that happens twice (02:30 on
		// 25 October): schedules between 02:00 and 03:00 local are best
		// avoided. The report keys (UTC minute) keep both autumn runs
		// apart, so each is posted once.
		{"Berlin 2:30 skipped in spring", "CRON_TZ=Europe/Berlin 30 2 * * *", utc(2026, 3, 28, 12, 0),
			[]time.Time{utc(2026, 3, 30, 0, 30)}},
		{"Berlin 2:30 twice in autumn", "CRON_TZ=Europe/Berlin 30 2 * * *", utc(2026, 10, 24, 12, 0),
			[]time.Time{utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 1, 30)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidSpec(tc.spec); err != nil {
				t.Fatal(err)
			}
			s, err := cron.ParseStandard(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			at := tc.from
			for i, want := range tc.want {
				at = s.Next(at)
				if !at.Equal(want) {
					t.Fatalf("run %d: Next = %s, want %s", i+1, at.UTC(), want)
				}
			}
		})
	}
}

// TestNewRejectsBadSpecs: every bad spec is reported at once, naming the job.
func TestNewRejectsBadSpecs(t *testing.T) {
	_, err := New(Config{
		Probing:    "every 5 minutes",
		Reports:    []ReportJob{{Spec: "0 9 * * *", Channel: "C1"}, {Spec: "CRON_TZ=Mars/Olympus_Mons 0 9 * * *", Channel: "C2"}, {Spec: "61 9 * * *", Channel: "C3"}},
		ProbeRound: noop, Report: noopReport,
	})
	if !errors.Is(err, ErrSpec) {
		t.Fatalf("err = %v, want ErrSpec", err)
	}
	for _, want := range []string{"probing", "report[1] to C2", "Mars/Olympus_Mons", "report[2] to C3", "61"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "report[0]") {
		t.Errorf("the valid report was reported: %v", err)
	}
	if ValidSpec("@every 5m") != nil || ValidSpec("@weekly") != nil || ValidSpec("* * *") == nil {
		t.Error("ValidSpec disagrees with cron.ParseStandard")
	}
}

func TestProbingOff(t *testing.T) {
	for _, spec := range []string{"", "off", " off "} {
		s, err := New(Config{Probing: spec, ProbeRound: noop, Retention: noop, RetentionSpec: "off"})
		if err != nil {
			t.Fatal(err)
		}
		if jobs := s.Jobs(); len(jobs) != 0 {
			t.Errorf("probing %q scheduled %v", spec, jobs)
		}
	}
}
