package smtptest

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary client bytes to a session: it must neither
// panic nor hang, whatever the client sends. The first byte picks the
// behaviour (the endless ones, which ignore input, are left out).
func FuzzSession(f *testing.F) {
	s, err := Start(Options{IdleTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	var picks []Behavior
	for _, b := range Behaviors() {
		if b != EndlessLine && b != EndlessReply {
			picks = append(picks, b)
		}
	}
	f.Add([]byte("\x00EHLO x\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello"))
	f.Add([]byte("\x00EHLO x\r\nMAIL FROM:<a@b>\r\nRSET\r\nNOOP\r\nQUIT\r\n"))
	f.Add([]byte("\x14EHLO x\r\nSTARTTLS\r\n\x16\x03\x01\x00\x02ab"))
	f.Add([]byte("\x06helo\nstarttls\n\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		b := picks[int(in[0])%len(picks)]
		cc, sc := net.Pipe()
		ss := &session{s: s, id: 1, behavior: b, raw: sc, log: slog.New(slog.DiscardHandler)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			ss.run()
		}()
		go func() { _, _ = io.Copy(io.Discard, cc) }()
		_, _ = cc.Write(in[1:])
		_ = cc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session (%s) did not end after the client closed", b)
		}
		if len(ss.lines) > 2*maxCommands+10 {
			t.Errorf("transcript of %d lines", len(ss.lines))
		}
	})
}
