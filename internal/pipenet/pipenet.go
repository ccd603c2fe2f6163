// Package pipenet is a net.Listener of in-memory connections (net.Pipe), for
// tests that run an HTTP server inside a testing/synctest bubble on its fake
// clock, where real sockets cannot be used.
package pipenet

import (
	"net"
	"sync"
)

// Listener hands out the server ends of the connections made with Dial.
type Listener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// Listen returns a Listener that reports 127.0.0.1:port as its address.
func Listen(port int) *Listener {
	return &Listener{
		addr:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
	}
}

// Accept waits for the next Dial, or for Close.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close ends Accept; connections not yet accepted are closed.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given to Listen.
func (l *Listener) Addr() net.Addr { return l.addr }

// Dial connects to the server without waiting for it to accept (a TCP
// connection also exists before the server's Accept) and returns the
// client's end.
func (l *Listener) Dial() net.Conn {
	client, server := net.Pipe()
	go func() {
		select {
		case l.conns <- server:
		case <-l.done:
			server.Close()
		}
	}()
	return client
}
