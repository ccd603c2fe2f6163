//go:build !linux

package probe

import "net"

// quickAck returns c unchanged: TCP_QUICKACK is Linux's. Elsewhere the
// delayed ACK of a server's TLS 1.3 NewSessionTicket can still hold its
// answer to EHLO over TLS back by the peer's delayed-ACK timeout (see
// quickack_linux.go).
func quickAck(c net.Conn) net.Conn { return c }
