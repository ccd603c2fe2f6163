package smtptest

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestRemark: the Remark ends the first line of every reply, the
// greeting and an error included, and is in the transcript.
func TestRemark(t *testing.T) {
	const remark = "<@U0ADMIN01> <!channel>"
	s := StartT(t, Options{Behavior: EHLO550, Remark: remark})
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "220 ") || !strings.HasSuffix(greeting, " "+remark+"\r\n") {
		t.Fatalf("greeting %q (%v)", greeting, err)
	}
	if _, err := c.Write([]byte("EHLO client.test.example\r\n")); err != nil {
		t.Fatal(err)
	}
	if reply, err := br.ReadString('\n'); err != nil || reply != "550 5.7.1 Client host rejected "+remark+"\r\n" {
		t.Fatalf("EHLO reply %q (%v)", reply, err)
	}
}
