package maillog

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var benchSize = flag.Int64("maillog.size", 1<<30, "bytes of the synthetic mail log BenchmarkReadLog generates")

// BenchmarkReadLog generates a synthetic Postfix log of -maillog.size
// bytes (default 1 GiB) covering 30 days, once, then measures the answer
// to a 1-hour window (read backwards from the end) and a whole-file read
// (MB/s of the parser and aggregator).
//
//	go test ./maillog -run '^$' -bench ReadLog -benchtime 5x
func BenchmarkReadLog(b *testing.B) {
	path := filepath.Join(b.TempDir(), "mail.log")
	end := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	start := time.Now()
	size, last := generate(b, path, *benchSize, end.Add(-30*24*time.Hour), end)
	b.Logf("generated %d MB up to %s in %s", size>>20, last.Format(time.Stamp), time.Since(start).Round(time.Millisecond))
	c := Clock{Now: last.Add(time.Second), Location: time.UTC}
	b.Run("window_1h", func(b *testing.B) {
		var s Summary
		for b.Loop() {
			s, _ = Read(context.Background(), path, time.Hour, Options{Clock: c})
		}
		if s.Recognised == 0 || len(s.Queue) == 0 {
			b.Fatalf("the 1-hour window holds nothing: %+v", s.Error)
		}
		b.ReportMetric(float64(s.BytesRead)/(1<<20), "MB_read")
		b.ReportMetric(float64(s.Recognised), "lines_in_window")
	})
	b.Run("whole_file", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			s, _ := Read(context.Background(), path, 31*24*time.Hour, Options{Clock: c, MaxScan: size + 1})
			if s.Truncated || !s.Available {
				b.Fatalf("whole-file read: %+v", s.Error)
			}
		}
	})
}

// generate writes about size bytes of Postfix lines evenly spread from
// from to to: per message, smtpd/cleanup/qmgr lines, and one in eight is
// deferred with an SSL_connect error before being sent later.
func generate(b *testing.B, path string, size int64, from, to time.Time) (int64, time.Time) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 4<<20)
	const perMsg = 680 // bytes per message, roughly
	msgs := size / perMsg
	step := to.Sub(from) / time.Duration(max(msgs, 1))
	var written int64
	var last time.Time
	for i := int64(0); written < size; i++ {
		last = from.Add(time.Duration(i) * step)
		ts := last.Format(time.Stamp)
		id := fmt.Sprintf("%X", 0x10000000000+i)
		pid := 1000 + i%30000
		ip := []string{"142.250.102.26", "142.251.9.26", "142.250.150.27", "64.233.184.27"}[i%4]
		n, _ := fmt.Fprintf(w, "%s relay-2 postfix/smtpd[%d]: %s: client=app.example.org[192.0.2.10]\n"+
			"%s relay-2 postfix/cleanup[%d]: %s: message-id=<%d@app.example.org>\n"+
			"%s relay-2 postfix/qmgr[999]: %s: from=<billing@example.org>, size=2211, nrcpt=1 (queue active)\n",
			ts, pid, id, ts, pid+1, id, i, ts, id)
		written += int64(n)
		if i%8 == 0 {
			n, _ = fmt.Fprintf(w, "%s relay-2 postfix/smtp[%d]: SSL_connect error to gmail-smtp-in.l.google.com[%s]:25: Connection reset by peer\n"+
				"%s relay-2 postfix/smtp[%d]: %s: to=<user%d@gmail.com>, relay=gmail-smtp-in.l.google.com[%s]:25, delay=0.4, delays=0.1/0/0.3/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)\n",
				ts, pid+2, ip, ts, pid+2, id, i, ip)
			written += int64(n)
		}
		n, _ = fmt.Fprintf(w, "%s relay-2 postfix/smtp[%d]: %s: to=<user%d@gmail.com>, relay=gmail-smtp-in.l.google.com[%s]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 OK  1733341385 a640c23a62f3a-aa5f1a2b3c4si.123 - gsmtp)\n"+
			"%s relay-2 postfix/qmgr[999]: %s: removed\n",
			ts, pid+3, id, i, ip, ts, id)
		written += int64(n)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return written, last
}
