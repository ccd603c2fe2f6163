package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
)

func TestList(t *testing.T) {
	var out, errb strings.Builder
	if code := run(t.Context(), []string{"-list"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, k := range postfixlab.Kinds() {
		if !strings.Contains(out.String(), string(k)+" ") {
			t.Errorf("-list lacks %s:\n%s", k, out.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-kinds", "ok,tls13_only"}, {"extra"}, {"-no-such-flag"}} {
		var out, errb strings.Builder
		if code := run(t.Context(), args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errb.String())
		}
	}
}

// TestServes runs the command with one ok listener and the relay, reads
// its lines, greets the listener and stops it with its context.
func TestServes(t *testing.T) {
	postfixlab.Require(t)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var errb strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-kinds", "ok", "-ipv6=false"}, pw, &errb)
		pw.Close()
	}()
	facts := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			break
		}
		k, v, _ := strings.Cut(line, " ")
		facts[k] = v
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	for _, k := range []string{"listening", "ca", "servername", "config", "log", "relay", "relay-mx", "relay-config", "relay-log"} {
		if facts[k] == "" {
			t.Errorf("no %q line: %q", k, facts)
		}
	}
	kind, addr, _ := strings.Cut(facts["listening"], " ")
	if kind != "ok" {
		t.Errorf("listening %q", facts["listening"])
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
		t.Errorf("dial the ok listener: %v", err)
	} else {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		greeting, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(greeting, "220 mx.test.example ESMTP Postfix") {
			t.Errorf("greeting %q: %v", greeting, err)
		}
		c.Close()
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("postfixlabd did not stop")
	}
}
