package probe_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"sync"
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
// of one probe's (x-single). cpu-ms is the CPU time of one run, clients and
// servers together: on a machine with few cores it bounds how close to one
// probe's time the whole run can get.
//
//   - default: the default bound (DefaultConcurrency, 64), which covers
//     every probe, so the run takes its slowest probe plus the CPU of 40
//     TLS handshakes that all start at once, client and server sides both
//     in this process.
//   - bound=16: the former default; the probes run in three waves.
//   - plaintext: servers without STARTTLS, so no TLS: what the fan-out
//     itself costs.
//   - bare-crypto-tls: not gmailtls but the least a Go client can do per
//     probe, against the same servers at the same moment: greeting, EHLO,
//     STARTTLS, a TLS 1.3 handshake with crypto/tls's defaults that
//     verifies the chain, EHLO, QUIT, without transcript, timings or
//     classification. Its x-single is what the handshakes themselves cost
//     in this fan-out on this machine: on two cores, the CPU of 40 client
//     and 40 server sides of X25519MLKEM768 and ECDSA keeps it near 1.45.
//     The default run can come out slightly below it, as gmailtls verifies
//     a chain it meets again in the same run only once.
//   - bare-crypto-tls,x25519: the same with the classic X25519 key
//     exchange only, no post-quantum share: what the fan-out costs on this
//     machine without ML-KEM's CPU.
func BenchmarkFanout(b *testing.B) {
	ctx := context.Background()
	for _, run := range []struct {
		name     string
		bound    int
		behavior smtptest.Behavior
		net      byte // 127.0.0.net+...
		bare     bool
	}{
		{fmt.Sprintf("default,bound=%d", probe.DefaultConcurrency), 0, smtptest.Gmail, 100, false},
		{"bound=16", 16, smtptest.Gmail, 100, false},
		{"plaintext", 0, smtptest.NoSTARTTLS, 160, false},
		{"bare-crypto-tls", 0, smtptest.Gmail, 100, true},
		{"bare-crypto-tls,x25519", 0, smtptest.Gmail, 100, true},
	} {
		b.Run(run.name, func(b *testing.B) {
			lab := fanoutLab(b, run.behavior, run.net)
			if strings.HasSuffix(run.name, ",x25519") {
				lab.curves = []tls.CurveID{tls.X25519}
			}
			cfg, one := lab.cfg, lab.single
			cfg.Concurrency = run.bound
			if run.bare {
				one = lab.bareSingle(b)
			}
			cpu0 := cpuTime(b)
			for b.Loop() {
				if run.bare {
					lab.bareRun(b)
					continue
				}
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

// lab is the fan-out of BenchmarkFanout: its probe config, the median
// time of one probe alone and the 40 endpoints.
type lab struct {
	cfg    probe.Config
	single time.Duration
	eps    []probe.Endpoint
	dialer *portDialer
	roots  *x509.CertPool
	curves []tls.CurveID // bareSession's key exchanges (nil: crypto/tls's defaults)
}

// fanoutLab starts the 10 servers of BenchmarkFanout (5 MX × 2 IPs from
// 127.0.0.net on) and returns the probe config that reaches them through a
// fake resolver, and the median time of one probe alone.
func fanoutLab(b *testing.B, behavior smtptest.Behavior, net0 byte) *lab {
	b.Helper()
	const delay = 50 * time.Millisecond
	ca := newCA(b)
	d := &portDialer{}
	res := &fakeResolver{mx: map[string][]*net.MX{}, addrs: map[string][]net.IPAddr{}}
	var sources []netip.Addr
	for i := range 4 {
		sources = append(sources, netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)}))
	}
	var eps []probe.Endpoint
	for m := range 5 {
		name := fmt.Sprintf("alt%d.mx.gmail.test", m)
		res.mx["gmail.test"] = append(res.mx["gmail.test"], &net.MX{Host: name + ".", Pref: uint16(5 + 10*m)})
		for i := range 2 {
			ip := fmt.Sprintf("127.0.0.%d", int(net0)+10*m+i)
			d.add(smtptest.StartT(b, smtptest.Options{Behavior: behavior, CA: ca, Hostname: testHost, Addr: ip + ":0", GreetingDelay: delay}))
			res.addrs[name] = append(res.addrs[name], ipAddrs(ip)...)
			for _, src := range sources {
				eps = append(eps, probe.Endpoint{MX: name, IP: netip.MustParseAddr(ip), Port: 25, Source: src})
			}
		}
	}
	cfg := probe.Config{
		Domain: "gmail.test", ServerName: testHost, RootCAs: ca.Pool, HelloName: "probe.test.example",
		Resolver: res, Dialer: d, Sources: sources, Timeout: 10 * time.Second,
	}
	l := &lab{cfg: cfg, eps: eps, dialer: d, roots: ca.Pool}
	l.single = median(b, func() error {
		_, err := probe.ProbeOne(context.Background(), cfg, eps[0])
		return err
	})
	return l
}

// median is the median time of 7 runs of f.
func median(b *testing.B, f func() error) time.Duration {
	b.Helper()
	times := make([]time.Duration, 7)
	for i := range times {
		t := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		times[i] = time.Since(t)
	}
	slices.Sort(times)
	return times[len(times)/2]
}

// bareSingle is the median time of one bareSession alone.
func (l *lab) bareSingle(b *testing.B) time.Duration {
	return median(b, func() error { return l.bareSession(l.eps[0]) })
}

// bareRun runs a bareSession toward every endpoint at once.
func (l *lab) bareRun(b *testing.B) {
	errs := make([]error, len(l.eps))
	var wg sync.WaitGroup
	for i, ep := range l.eps {
		wg.Go(func() { errs[i] = l.bareSession(ep) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// bareSession is the least a Go client does for one probe: greeting, EHLO,
// STARTTLS, a TLS handshake that crypto/tls verifies with its defaults,
// EHLO, QUIT.
func (l *lab) bareSession(ep probe.Endpoint) error {
	ctx := context.Background()
	c, err := l.dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(ep.IP, uint16(ep.Port)).String(), ep.Source)
	if err != nil {
		return err
	}
	defer c.Close()
	tp := textproto.NewConn(c)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return err
	}
	for _, cmd := range []string{"EHLO probe.test.example", "STARTTLS"} {
		if err := tp.PrintfLine("%s", cmd); err != nil {
			return err
		}
		if _, _, err := tp.ReadResponse(2); err != nil {
			return err
		}
	}
	tc := tls.Client(c, &tls.Config{ServerName: testHost, RootCAs: l.roots, CurvePreferences: l.curves})
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	tp = textproto.NewConn(tc)
	for _, cmd := range []string{"EHLO probe.test.example", "QUIT"} {
		if err := tp.PrintfLine("%s", cmd); err != nil {
			return err
		}
		if _, _, err := tp.ReadResponse(2); err != nil {
			return err
		}
	}
	return tc.Close()
}
