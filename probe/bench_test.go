package probe_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
// (40 probes) against servers that wait 50 ms before their greeting, and
// reports the wall time of the whole run as a multiple of one probe's
// (x-single). With a bound that covers every probe, the run should take
// about as long as its slowest probe; with the default bound of 16 the
// 40 probes run in three waves.
func BenchmarkFanout(b *testing.B) {
	const delay = 50 * time.Millisecond
	ca := newCA(b)
	d := &portDialer{}
	res := &fakeResolver{mx: map[string][]*net.MX{}, addrs: map[string][]net.IPAddr{}}
	for m := range 5 {
		name := fmt.Sprintf("alt%d.mx.gmail.test", m)
		res.mx["gmail.test"] = append(res.mx["gmail.test"], &net.MX{Host: name + ".", Pref: uint16(5 + 10*m)})
		for i := range 2 {
			ip := fmt.Sprintf("127.0.0.%d", 100+10*m+i)
			d.add(smtptest.StartT(b, smtptest.Options{CA: ca, Hostname: testHost, Addr: ip + ":0", GreetingDelay: delay}))
			res.addrs[name] = append(res.addrs[name], ipAddrs(ip)...)
		}
	}
	var sources []netip.Addr
	for i := range 4 {
		sources = append(sources, netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)}))
	}
	base := probe.Config{
		Domain: "gmail.test", ServerName: testHost, RootCAs: ca.Pool, HelloName: "probe.test.example",
		Resolver: res, Dialer: d, Sources: sources, Timeout: 10 * time.Second,
	}
	ctx := context.Background()

	// One probe, the yardstick: the median of a few.
	single := make([]time.Duration, 7)
	for i := range single {
		t := time.Now()
		r := probe.ProbeOne(ctx, base, probe.Endpoint{MX: "alt0.mx.gmail.test", IP: netip.MustParseAddr("127.0.0.100"), Port: 25, Source: sources[0]})
		single[i] = time.Since(t)
		if !r.OK {
			b.Fatalf("single probe failed: %s %s", r.Failure, r.Error)
		}
	}
	slices.Sort(single)
	one := single[len(single)/2]

	for _, bound := range []int{40, probe.DefaultConcurrency} {
		b.Run(fmt.Sprintf("bound=%d", bound), func(b *testing.B) {
			cfg := base
			cfg.Concurrency = bound
			for b.Loop() {
				rep, err := probe.Run(ctx, cfg)
				if err != nil || len(rep.Results) != 40 || !rep.OK() {
					b.Fatalf("fan-out: %v, %d results, ok=%v", err, len(rep.Results), rep.OK())
				}
			}
			wall := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(one.Microseconds())/1000, "single-ms")
			b.ReportMetric(float64(wall.Microseconds())/1000, "wall-ms")
			b.ReportMetric(float64(wall)/float64(one), "x-single")
		})
	}
}
