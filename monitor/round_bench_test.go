package monitor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// BenchmarkScheduledRound is issue 5's "Speed and size" on the path the
// scheduler of `gmailtls serve` runs: CheckAll with TriggerSchedule over 200
// relays with 5 MX hosts each (1000 STARTTLS probes with TLS 1.3 handshakes
// and chain verification) against loopback servers that wait 100 ms before
// their greeting, storing every run in a real SQLite file that already
// holds history (64 earlier runs per relay, about 5 hours at @every 5m), and
// evaluating escalation. It reports the wall time of a round (round-s, goal
// < 2) and the peak RSS of the process (peak-rss-MiB, goal < 100).
func BenchmarkScheduledRound(b *testing.B) {
	const (
		nRelays  = 200
		nMX      = 5
		delay    = 100 * time.Millisecond
		prevRuns = 64
	)
	ca, err := smtptest.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	var targets []probe.Target
	var mx []string
	for m := range nMX {
		srv := smtptest.StartT(b, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: smtptest.DefaultHostname,
			Addr: fmt.Sprintf("127.0.0.%d:0", 100+m), GreetingDelay: delay, IdleTimeout: 30 * time.Second})
		targets = append(targets, probe.Target{Host: srv.Host(), Port: srv.Port()})
		mx = append(mx, srv.Addr())
	}
	base := probe.Config{
		Domain: "gmail.test", MX: targets, ServerName: smtptest.DefaultHostname, RootCAs: ca.Pool,
		HelloName: "relay.test.example", Resolver: smtptest.NoDNS{}, Timeout: 10 * time.Second,
	}
	cfg := config.Default()
	cfg.Target.MX = mx
	cfg.Relays = nil
	runners := map[string]relay.Runner{}
	for i := range nRelays {
		name := fmt.Sprintf("relay-%03d", i+1)
		cfg.Relays = append(cfg.Relays, config.Relay{Name: name, Kind: relay.KindLocal})
		c := base
		c.Relay = name
		runners[name] = relay.NewLocal(name, c, nil)
	}
	ctx := context.Background()
	store, err := storage.Open(ctx, filepath.Join(b.TempDir(), "gmailtls.db"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
		b.Fatal(err)
	}
	// History: prevRuns passing runs per relay, 5 minutes apart, ending now.
	now := time.Now()
	var batch []storage.RunWithResults
	for i := range nRelays {
		name := fmt.Sprintf("relay-%03d", i+1)
		for k := range prevRuns {
			at := now.Add(-time.Duration(prevRuns-k) * 5 * time.Minute)
			rw := storage.RunWithResults{Run: storage.Run{Relay: name, Trigger: message.SourceSchedule, StartedAt: at}}
			for _, t := range targets {
				rw.Results = append(rw.Results, probe.Result{Relay: name, Engine: probe.EngineNative, MX: t.Host, IP: t.Host, Port: t.Port,
					StartedAt: at, OK: true, Timings: probe.Timings{Connect: 0.1, Banner: 100, Handshake: 1, Total: 102}, Hints: []string{}})
			}
			batch = append(batch, rw)
		}
	}
	if err := store.RecordRuns(ctx, batch); err != nil {
		b.Fatal(err)
	}
	batch = nil
	// The peak RSS is the rounds', not the filling's: give the memory back
	// and reset the high-water mark (Linux: 5 > /proc/self/clear_refs).
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS includes filling the history: %v", err)
	}
	m := New(Deps{Config: cfg, Store: store, Runners: runners})

	var slowest time.Duration
	for b.Loop() {
		start := time.Now()
		checks, err := m.CheckAll(ctx, Check{Trigger: message.SourceSchedule, RequestedBy: "schedule", SkipPaused: true})
		if err != nil {
			b.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
		if len(checks) != nRelays {
			b.Fatalf("%d relays checked, want %d", len(checks), nRelays)
		}
		for _, c := range checks {
			if !c.Report.OK() || len(c.Report.Results) != nMX {
				b.Fatalf("%s: %d results, ok %v: %+v", c.Relay, len(c.Report.Results), c.Report.OK(), c.Report.Results)
			}
		}
	}
	b.ReportMetric((b.Elapsed() / time.Duration(b.N)).Seconds(), "round-s")
	b.ReportMetric(slowest.Seconds(), "slowest-round-s")
	b.ReportMetric(float64(nRelays*nMX), "probes/round")
	if hwm, rss, err := procRSS(); err == nil {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	} else {
		b.Logf("RSS not reported: %v", err)
	}
}

// procRSS reads the peak (VmHWM) and current (VmRSS) resident set size of
// this process, in bytes, from /proc/self/status.
func procRSS() (peak, current int64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("reading %s: %w", key, err)
		}
		if key == "VmHWM" {
			peak = kb << 10
		} else {
			current = kb << 10
		}
	}
	if peak == 0 {
		return 0, 0, errors.New("no VmHWM in /proc/self/status")
	}
	return peak, current, sc.Err()
}
