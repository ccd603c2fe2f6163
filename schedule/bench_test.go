package schedule

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

// noDNS fails every lookup: the benchmark's targets are pinned addresses
// and nothing may reach a real resolver.
type noDNS struct{}

func (noDNS) LookupMX(context.Context, string) ([]*net.MX, error) {
	return nil, errors.New("no DNS in benchmarks")
}

func (noDNS) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return nil, errors.New("no DNS in benchmarks")
}

// BenchmarkProbeRound is issue 5's "Speed and size": one probing round over
// 200 relays with 5 MX hosts each (1000 STARTTLS probes with TLS 1.3
// handshakes and chain verification) against loopback servers that wait
// 100 ms before their greeting, with DefaultConcurrency relays at once.
// It reports the wall time of a round (round-s, goal < 2) and the peak RSS
// of the process (peak-rss-MiB, goal < 100).
func BenchmarkProbeRound(b *testing.B) {
	const (
		nRelays = 200
		nMX     = 5
		delay   = 100 * time.Millisecond
	)
	ca, err := smtptest.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	var targets []probe.Target
	for m := range nMX {
		srv := smtptest.StartT(b, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: smtptest.DefaultHostname,
			Addr: fmt.Sprintf("127.0.0.%d:0", 100+m), GreetingDelay: delay, IdleTimeout: 30 * time.Second})
		targets = append(targets, probe.Target{Host: srv.Host(), Port: srv.Port()})
	}
	base := probe.Config{
		Domain: "gmail.test", MX: targets, ServerName: smtptest.DefaultHostname, RootCAs: ca.Pool,
		HelloName: "relay.test.example", Resolver: noDNS{}, Timeout: 10 * time.Second,
	}
	runners := map[string]relay.Runner{}
	var names []string
	for i := range nRelays {
		name := fmt.Sprintf("relay-%03d", i+1)
		cfg := base
		cfg.Relay = name
		runners[name] = relay.NewLocal(name, cfg, nil)
		names = append(names, name)
	}
	var results, failures atomic.Int64
	check := func(ctx context.Context, name string) error {
		rep, err := runners[name].Probe(ctx, relay.Options{})
		if err != nil {
			return err
		}
		for _, r := range rep.Results {
			results.Add(1)
			if !r.OK {
				failures.Add(1)
				return fmt.Errorf("%s %s: %s at %s: %s", r.MX, r.IP, r.Failure, r.Stage, r.Error)
			}
		}
		return nil
	}
	ctx := context.Background()
	var slowest time.Duration
	for b.Loop() {
		start := time.Now()
		if err := ProbeRound(ctx, names, nil, check, 0); err != nil {
			b.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
	}
	if want := int64(b.N * nRelays * nMX); results.Load() != want || failures.Load() != 0 {
		b.Fatalf("%d results (%d failed), want %d all passing", results.Load(), failures.Load(), want)
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
