package smtptest_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// Start a Gmail-like server on loopback and verify its certificate after
// STARTTLS with the server's CA.
func ExampleStart() {
	srv, err := smtptest.Start(smtptest.Options{Behavior: smtptest.Gmail})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	readReply := func() string {
		var last string
		for {
			line, _ := r.ReadString('\n')
			last = strings.TrimSpace(line)
			if len(last) < 4 || last[3] != '-' {
				return last
			}
		}
	}
	fmt.Println(strings.HasSuffix(readReply(), "- gsmtp"))
	fmt.Fprintf(conn, "EHLO probe.test.example\r\n")
	fmt.Println(readReply())
	fmt.Fprintf(conn, "STARTTLS\r\n")
	fmt.Println(readReply())

	tc := tls.Client(conn, &tls.Config{ServerName: srv.Hostname(), RootCAs: srv.CA().Pool})
	if err := tc.Handshake(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tls.VersionName(tc.ConnectionState().Version))
	// Output:
	// true
	// 250 SMTPUTF8
	// 220 2.0.0 Ready to start TLS
	// TLS 1.3
}
