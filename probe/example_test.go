package probe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// Run probes a STARTTLS server on loopback, the way a lab aims the engine
// at its own server: a pinned MX, a servername and the lab's CA.
func ExampleRun() {
	ca, err := smtptest.NewCA()
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := smtptest.Start(smtptest.Options{CA: ca, Hostname: "mx.test.example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	target, err := probe.ParseTarget(srv.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := probe.Run(context.Background(), probe.Config{
		MX:         []probe.Target{target},
		ServerName: "mx.test.example",
		RootCAs:    ca.Pool,
		HelloName:  "relay-1.example.net",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rep.Results {
		fmt.Println("ok:", r.OK)
		fmt.Println("tls:", r.TLS.Version, r.TLS.Group, "verified:", r.TLS.Verified)
		fmt.Println("certificate:", r.TLS.PeerCertificates[0].Subject)
		fmt.Println("last line:", r.Transcript[len(r.Transcript)-1])
	}
	// Output:
	// ok: true
	// tls: TLS 1.3 X25519MLKEM768 verified: true
	// certificate: CN=mx.test.example
	// last line: S: 221 2.0.0 closing connection
}

// Run reports a firewall's SMTP inspection as starttls_masked, with the
// first thing to check.
func ExampleRun_masked() {
	srv, err := smtptest.Start(smtptest.Options{Behavior: smtptest.Masked})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	target, _ := probe.ParseTarget(srv.Addr())
	rep, err := probe.Run(context.Background(), probe.Config{
		MX: []probe.Target{target}, ServerName: srv.Hostname(), RootCAs: srv.CA().Pool, HelloName: "relay-1.example.net",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := rep.Results[0]
	fmt.Println(r.Stage, r.Failure)
	fmt.Println(r.Hints[0])
	// Output:
	// ehlo starttls_masked
	// SMTP inspection (e.g. Cisco ASA/PIX ESMTP inspection) is masking STARTTLS: disable SMTP inspection on the port-25 path
}

func ExampleClassify() {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	fmt.Println(probe.Classify(probe.StageHandshake, reset))
	fmt.Println(probe.Classify(probe.StageHandshake, fmt.Errorf("handshake: %w", io.EOF)))
	fmt.Println(probe.Classify(probe.StageConnect, errors.Join(os.ErrDeadlineExceeded)))
	// Output:
	// tls_reset
	// tls_reset
	// connect_timeout
}

func ExampleParseTarget() {
	for _, s := range []string{"gmail-smtp-in.l.google.com", "127.0.0.1:2525", "[::1]:2525", "host:smtp"} {
		t, err := probe.ParseTarget(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(t.Host, t.Port)
	}
	// Output:
	// gmail-smtp-in.l.google.com 25
	// 127.0.0.1 2525
	// ::1 2525
	// probe: invalid configuration: MX target "host:smtp": port "smtp" is not a number from 1 to 65535
}
