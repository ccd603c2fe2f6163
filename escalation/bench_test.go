package escalation

import (
	"fmt"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// fleet builds the benchmark history: relays × 5 MX × 2 IPs, one run every
// 5 minutes, runs per relay; relay-3 fails every other run and relay-5
// fails toward one MX, so that the rules have work to do.
func fleet(relays, runs int) []Observation {
	var obs []Observation
	var id, runID int64
	for k := range runs {
		at := t0.Add(time.Duration(k) * 5 * time.Minute)
		for ri := range relays {
			runID++
			for mx := range 5 {
				for ip := range 2 {
					id++
					o := Observation{
						ID: id, Relay: fmt.Sprintf("relay-%02d", ri+1), SourceIP: "198.51.100.1",
						MX: fmt.Sprintf("alt%d.gmail-smtp-in.l.google.com", mx), IP: fmt.Sprintf("192.0.2.%d", 10*mx+ip),
						At: at.Add(time.Duration(mx*2+ip) * 300 * time.Millisecond), OK: true, RunID: runID,
					}
					if (ri == 2 && k%2 == 0) || (ri == 4 && mx == 1) {
						o.OK, o.Failure = false, string(probe.FailTLSReset)
					}
					obs = append(obs, o)
				}
			}
		}
	}
	return obs
}

// BenchmarkEvaluateOneNewResult is the work after every stored result: 20
// relays × 5 MX × 2 IPs with the last K runs of each loaded (1,000
// observations), one new result, re-evaluate against the previous
// assessment. Goal: under 1 ms per operation.
func BenchmarkEvaluateOneNewResult(b *testing.B) {
	p := DefaultPolicy()
	runs, _ := p.Lookback()
	hist := fleet(20, runs)
	last := hist[len(hist)-1]
	prev := Evaluate(last.At, hist, nil, nil, p)
	now := last.At.Add(5 * time.Minute)
	fresh := Observation{
		ID: last.ID + 1, Relay: "relay-07", SourceIP: "198.51.100.1", MX: "alt0.gmail-smtp-in.l.google.com",
		IP: "192.0.2.0", At: now, Failure: string(probe.FailTLSReset), RunID: last.RunID + 1,
	}
	in := append(hist[:len(hist):len(hist)], fresh)
	b.ReportAllocs()
	b.ResetTimer()
	var a Assessment
	for b.Loop() {
		a = Evaluate(now, in, nil, &prev, p)
	}
	b.StopTimer()
	if rs := mustRelay(b, a, "relay-07"); rs.Level != LevelWatch {
		b.Fatalf("relay-07 at %s after one failure, want watch", rs.Level)
	}
	b.ReportMetric(float64(len(in)), "obs/op")
}

// BenchmarkReplay rebuilds a day of history after a restart: 20 relays ×
// 5 MX × 2 IPs every 5 minutes (288 runs each, 57,600 observations).
func BenchmarkReplay(b *testing.B) {
	p := DefaultPolicy()
	hist := fleet(20, 288)
	b.ReportAllocs()
	b.ResetTimer()
	var a Assessment
	for b.Loop() {
		a = Replay(hist, nil, p)
	}
	b.StopTimer()
	if a.Global.Level != LevelIncident {
		b.Fatalf("global %s, want incident (relay-03 and relay-05 at investigate)", a.Global.Level)
	}
	b.ReportMetric(float64(len(hist))/(b.Elapsed().Seconds()/float64(b.N)), "obs/s")
}
