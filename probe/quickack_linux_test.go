package probe

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestQuickAckBeforeEveryRead checks that the probe's connection leaves
// delayed-ACK (pingpong) mode before each read, even when the kernel put
// it back there after the previous one.
func TestQuickAckBeforeEveryRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 one\r\n220 two\r\n"))
		_, _ = io.Copy(io.Discard, c)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := quickAck(raw)
	if _, ok := c.(*quickAckConn); !ok {
		t.Fatalf("quickAck(%T) = %T, want a *quickAckConn", raw, c)
	}
	rc, err := raw.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	opt := func(set int) (got int) {
		t.Helper()
		var serr error
		if err := rc.Control(func(fd uintptr) {
			if set >= 0 {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, set)
			}
			if serr == nil {
				got, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
			}
		}); err != nil || serr != nil {
			t.Fatalf("TCP_QUICKACK: %v %v", err, serr)
		}
		return got
	}
	buf := make([]byte, 9)
	for i := range 2 {
		// What the kernel does when the session turns interactive.
		if got := opt(0); got != 0 {
			t.Fatalf("TCP_QUICKACK reads %d after setting 0", got)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if got := opt(-1); got != 1 {
			t.Errorf("read %d: TCP_QUICKACK is %d after the read, want 1 (quick-ack mode)", i+1, got)
		}
	}

	// A conn that is not a socket is left alone.
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if got := quickAck(p1); got != p1 {
		t.Errorf("quickAck(net.Pipe) = %T, want it unchanged", got)
	}
}
