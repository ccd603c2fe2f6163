package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

func TestList(t *testing.T) {
	var out, errOut strings.Builder
	if code := run(t.Context(), []string{"-list"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, b := range smtptest.Behaviors() {
		if !strings.Contains(out.String(), string(b)+" ") {
			t.Errorf("-list lacks %s", b)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-behavior", "bogus"}, {"extra"}, {"-nosuchflag"}} {
		var out, errOut strings.Builder
		if code := run(t.Context(), args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// TestServe runs the command, talks to it and stops it as a signal would.
func TestServe(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"-listen", "127.0.0.1:0", "-behavior", "starttls-454", "-ca-out", ca}, pw, io.Discard)
		_ = pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("first line %q, want listening ADDR", line)
	}
	if _, err := os.Stat(ca); err != nil {
		t.Errorf("CA file: %v", err)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	greeting, _ := r.ReadString('\n')
	_, _ = io.WriteString(conn, "STARTTLS\r\n")
	reply, _ := r.ReadString('\n')
	_ = conn.Close()
	if !strings.HasPrefix(greeting, "220 ") || !strings.HasPrefix(reply, "454 4.7.0") {
		t.Errorf("greeting %q, STARTTLS reply %q", greeting, reply)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("smtptestd did not stop")
	}
}
