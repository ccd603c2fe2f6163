package probe_test

import (
	"context"
	"slices"
	"testing"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// BenchmarkPostTLS is one full probe against a real Postfix (the OK
// listener of internal/postfixlab) and against the in-process Gmail-like
// server, reporting the median of timings_ms.post_tls (EHLO over TLS and
// its answer) and of the whole probe. Against Postfix 3.7 without a fix,
// post_tls was about 42 ms: Postfix's EHLO answer waited (Nagle) for the
// ACK of its NewSessionTicket, which the client's kernel delayed.
func BenchmarkPostTLS(b *testing.B) {
	ca := newCA(b)
	for _, server := range []string{"postfix", "smtptest"} {
		b.Run(server, func(b *testing.B) {
			var addr string
			if server == "postfix" {
				lab := postfixlab.Start(b, postfixlab.Options{CA: ca, Hostname: testHost})
				addr = lab.Addr(postfixlab.OK)
			} else {
				addr = smtptest.StartT(b, smtptest.Options{CA: ca, Hostname: testHost}).Addr()
			}
			cfg := pinned(b, ca, addr)
			ctx := context.Background()
			var postTLS, total []float64
			for b.Loop() {
				rep, err := probe.Run(ctx, cfg)
				if err != nil || !rep.OK() {
					b.Fatalf("probe failed: %v %+v", err, rep.Results)
				}
				postTLS = append(postTLS, rep.Results[0].Timings.PostTLS)
				total = append(total, rep.Results[0].Timings.Total)
			}
			b.ReportMetric(medianOf(postTLS), "post_tls-ms")
			b.ReportMetric(medianOf(total), "total-ms")
		})
	}
}

// medianOf is the median of xs (0 when empty).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
