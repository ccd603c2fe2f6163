package probe_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// BenchmarkProbeLoopback is one full probe (connect, greeting, EHLO,
// STARTTLS, TLS 1.3 with X25519MLKEM768 and chain verification, EHLO,
// QUIT) against the in-process Gmail-like server.
func BenchmarkProbeLoopback(b *testing.B) {
	ca := newCA(b)
	srv := smtptest.StartT(b, smtptest.Options{CA: ca, Hostname: testHost})
	cfg := pinned(b, ca, srv.Addr())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rep, err := probe.Run(ctx, cfg)
		if err != nil || !rep.OK() || rep.Results[0].TLS.Version != "TLS 1.3" {
			b.Fatalf("probe failed: %v %+v", err, rep.Results)
		}
	}
}

// BenchmarkFanout probes 5 MX hosts × 2 addresses × 4 source addresses
// (40 probes, sources 127.0.0.1-4) against servers that wait 50 ms before
// their greeting, and reports the wall time of the whole run as a multiple
// of one probe's (x-single). With a bound that covers every probe
// (bound=40) the run takes its slowest probe plus the CPU of 40 TLS
// handshakes that all start at once, client and server sides both in this
// process; with the default bound of 16 the probes run in three waves.
// The plaintext run (servers without STARTTLS, so no TLS) shows what the
// fan-out itself costs. cpu-ms is the CPU time of one run, clients and
// servers together: on a machine with few cores it bounds how close to
// one probe's time the whole run can get.
func BenchmarkFanout(b *testing.B) {
	ctx := context.Background()
	for _, run := range []struct {
		name     string
		bound    int
		behavior smtptest.Behavior
		net      byte // 127.0.0.net+...
	}{
		{"bound=40", 40, smtptest.Gmail, 100},
		{"bound=16", probe.DefaultConcurrency, smtptest.Gmail, 100},
		{"bound=40,plaintext", 40, smtptest.NoSTARTTLS, 160},
	} {
		b.Run(run.name, func(b *testing.B) {
			cfg, one := fanoutLab(b, run.behavior, run.net)
			cfg.Concurrency = run.bound
			cpu0 := cpuTime(b)
			for b.Loop() {
				rep, err := probe.Run(ctx, cfg)
				if err != nil || len(rep.Results) != 40 {
					b.Fatalf("fan-out: %v, %d results", err, len(rep.Results))
				}
				for _, r := range rep.Results {
					if r.OK != (run.behavior == smtptest.Gmail) {
						b.Fatalf("%s %s from %s: %s %s", r.MX, r.IP, r.SourceIP, r.Failure, r.Error)
					}
				}
			}
			cpu := (cpuTime(b) - cpu0) / time.Duration(b.N)
			wall := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms")
			b.ReportMetric(float64(one.Microseconds())/1000, "single-ms")
			b.ReportMetric(float64(wall.Microseconds())/1000, "wall-ms")
			b.ReportMetric(float64(wall)/float64(one), "x-single")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used: the
// clients and the servers of the benchmark together.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fanoutLab starts the 10 servers of BenchmarkFanout (5 MX × 2 IPs from
// 127.0.0.net on) and returns the probe config that reaches them through a
// fake resolver, and the median time of one probe alone.
func fanoutLab(b *testing.B, behavior smtptest.Behavior, net0 byte) (probe.Config, time.Duration) {
	b.Helper()
	const delay = 50 * time.Millisecond
	ca := newCA(b)
	d := &portDialer{}
	res := &fakeResolver{mx: map[string][]*net.MX{}, addrs: map[string][]net.IPAddr{}}
	for m := range 5 {
		name := fmt.Sprintf("alt%d.mx.gmail.test", m)
		res.mx["gmail.test"] = append(res.mx["gmail.test"], &net.MX{Host: name + ".", Pref: uint16(5 + 10*m)})
		for i := range 2 {
			ip := fmt.Sprintf("127.0.0.%d", int(net0)+10*m+i)
			d.add(smtptest.StartT(b, smtptest.Options{Behavior: behavior, CA: ca, Hostname: testHost, Addr: ip + ":0", GreetingDelay: delay}))
			res.addrs[name] = append(res.addrs[name], ipAddrs(ip)...)
		}
	}
	var sources []netip.Addr
	for i := range 4 {
		sources = append(sources, netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)}))
	}
	cfg := probe.Config{
		Domain: "gmail.test", ServerName: testHost, RootCAs: ca.Pool, HelloName: "probe.test.example",
		Resolver: res, Dialer: d, Sources: sources, Timeout: 10 * time.Second,
	}
	single := make([]time.Duration, 7)
	first := netip.MustParseAddr(fmt.Sprintf("127.0.0.%d", net0))
	for i := range single {
		t := time.Now()
		if _, err := probe.ProbeOne(context.Background(), cfg, probe.Endpoint{MX: "alt0.mx.gmail.test", IP: first, Port: 25, Source: sources[0]}); err != nil {
			b.Fatal(err)
		}
		single[i] = time.Since(t)
	}
	slices.Sort(single)
	return cfg, single[len(single)/2]
}
