//go:build linux

package postfixlab_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
)

// TestRelayLogAndDeferredQueue checks the relay test bed: a real Postfix
// relaying gmail.com, googlemail.com and a Google-hosted domain to a lab
// MX that resets the TLS handshake logs Postfix's own failure lines and
// keeps every message in its deferred queue, visible to postqueue -j.
func TestRelayLogAndDeferredQueue(t *testing.T) {
	t.Parallel()
	r := postfixlab.StartRelay(t, postfixlab.RelayOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	lines, err := r.Log()
	if err != nil {
		t.Fatal(err)
	}
	mx := fmt.Sprintf("127.0.0.1[127.0.0.1]:%d", r.MX.Port())
	wantReset := "postfix/smtp[" // then the pid, then the line below
	resetLine := "]: SSL_connect error to " + mx + ": Connection reset by peer"
	resets := 0
	for _, l := range lines {
		if strings.Contains(l, wantReset) && strings.HasSuffix(l, resetLine) {
			resets++
		}
	}
	if resets != len(postfixlab.DefaultRelayDomains) {
		t.Errorf("%d lines end with %q, want %d", resets, resetLine, len(postfixlab.DefaultRelayDomains))
	}
	for i, d := range postfixlab.DefaultRelayDomains {
		want := fmt.Sprintf("to=<user%d@%s>, relay=%s, ", i+1, d, mx)
		found := false
		for _, l := range lines {
			if strings.Contains(l, want) && strings.Contains(l, "dsn=4.7.5, "+postfixlab.LogDeferredTLS) {
				found = true
			}
		}
		if !found {
			t.Errorf("no deferred line for %s: want %q and %q", d, want, postfixlab.LogDeferredTLS)
		}
	}

	q, err := r.Queue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rcpts []string
	for _, e := range q {
		if e.QueueName != "deferred" || e.Sender != "lab@relay.test.example" || len(e.Recipients) != 1 {
			t.Errorf("queue entry %+v: want one recipient in the deferred queue from lab@relay.test.example", e)
			continue
		}
		if e.Recipients[0].DelayReason != "Cannot start TLS: handshake failure" {
			t.Errorf("delay_reason of %s = %q", e.Recipients[0].Address, e.Recipients[0].DelayReason)
		}
		rcpts = append(rcpts, e.Recipients[0].Address)
	}
	slices.Sort(rcpts)
	want := []string{"user1@gmail.com", "user2@googlemail.com", "user3@workspace-customer.test"}
	if !slices.Equal(rcpts, want) {
		t.Errorf("deferred recipients = %q, want %q", rcpts, want)
	}

	// The configuration directory works with Postfix's own commands.
	out, err := r.Postconf(ctx, "-h", "smtp_tls_security_level", "transport_maps")
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(out); len(f) != 2 || f[0] != "encrypt" || !strings.HasPrefix(f[1], "texthash:"+r.ConfigDir()) {
		t.Errorf("postconf -c %s = %q", r.ConfigDir(), out)
	}
	if n := r.MX.Connections(); n != len(want) {
		t.Errorf("the lab MX saw %d connections, want %d (one per message)", n, len(want))
	}
}

// TestInstanceLifecycle starts an instance, talks SMTP to it and checks
// that Stop leaves no master and no directory behind.
func TestInstanceLifecycle(t *testing.T) {
	t.Parallel()
	in := postfixlab.Start(t, postfixlab.Options{Listeners: []postfixlab.Listener{{Kind: postfixlab.OK}, {Kind: postfixlab.NoSTARTTLS}}})
	if !strings.HasPrefix(in.Version(), "3.") {
		t.Errorf("version %q", in.Version())
	}
	for _, c := range []struct {
		kind     postfixlab.Kind
		starttls bool
	}{{postfixlab.OK, true}, {postfixlab.NoSTARTTLS, false}} {
		ehlo := ehloReply(t, in.Addr(c.kind))
		if got := slices.Contains(ehlo, "250-STARTTLS"); got != c.starttls {
			t.Errorf("%s: STARTTLS offered = %v, want %v: %q", c.kind, got, c.starttls, ehlo)
		}
	}
	if _, err := in.WaitLog(t.Context(), "postfix/no_starttls/smtpd[", 1); err != nil {
		t.Errorf("each listener logs under its kind: %v", err)
	}
	pidFile, err := os.ReadFile(in.QueueDir() + "/pid/master.pid")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(pidFile), &pid); err != nil {
		t.Fatalf("master.pid %q: %v", pidFile, err)
	}
	if err := in.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("master %d still there after Stop: %v", pid, err)
	}
	if _, err := os.Stat(in.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the instance directory is still there: %v", err)
	}
	if err := in.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestLaunchReportsWhyMasterFailed checks that a configuration master
// refuses ends Launch with an error that says why.
func TestLaunchReportsWhyMasterFailed(t *testing.T) {
	t.Parallel()
	postfixlab.Require(t)
	_, err := postfixlab.Launch(postfixlab.Options{Main: []string{"mail_owner = no-such-user-gmailtls"}})
	if err == nil {
		t.Fatal("Launch succeeded with an unknown mail_owner")
	}
	// master reports a bad main.cf to syslog alone, before it reads
	// maillog_file; the error carries its exit and postconf's warnings.
	if !strings.Contains(err.Error(), "master exited at start-up") || !strings.Contains(err.Error(), "overriding earlier entry: mail_owner") {
		t.Errorf("error does not say what went wrong: %v", err)
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range postfixlab.Kinds() {
		got, err := postfixlab.ParseKind(strings.ToUpper(strings.ReplaceAll(string(k), "_", "-")))
		if err != nil || got != k || k.Description() == "" {
			t.Errorf("ParseKind(%q) = %q, %v; description %q", k, got, err, k.Description())
		}
	}
	if _, err := postfixlab.ParseKind("tls13_only"); err == nil || !strings.Contains(err.Error(), "no_shared_cipher") {
		t.Errorf("unknown kind: %v", err)
	}
}

// ehloReply reads the greeting of addr, sends EHLO and returns the reply
// lines, then QUITs.
func ehloReply(t *testing.T, addr string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil || !strings.Contains(greeting, "ESMTP Postfix (gmailtls lab)") {
		t.Fatalf("greeting %q: %v", greeting, err)
	}
	fmt.Fprintf(c, "EHLO client.test.example\r\n")
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("EHLO reply: %v", err)
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] == ' ' {
			break
		}
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return lines
}
