package probe

import (
	"crypto/tls"
	"net"
	"strings"
)

// sniffConn watches the TLS record layer of a handshake in both directions
// without changing it: it measures the ClientHello and notices plain-text
// fatal alerts, which crypto/tls does not always hand back as typed errors
// (a locally sent protocol_version alert, for instance).
type sniffConn struct {
	net.Conn
	in, out recordScanner
	// head holds the first bytes the server sent, to quote them when
	// they are not TLS.
	head []byte
}

// maxHead bounds sniffConn.head.
const maxHead = 120

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if len(c.head) < maxHead {
		c.head = append(c.head, p[:min(n, maxHead-len(c.head))]...)
	}
	c.in.feed(p[:n])
	return n, err
}

func (c *sniffConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.feed(p[:n])
	return n, err
}

// plainHead is the first line of what the server sent, made printable.
func (c *sniffConn) plainHead() string {
	line, _, _ := strings.Cut(string(c.head), "\n")
	return printable(strings.TrimSuffix(line, "\r"))
}

// attachAlert adds the fatal alert seen on the wire, if any, to a
// handshake error: the peer's first, else the one the probe sent.
func (c *sniffConn) attachAlert(err error) error {
	switch {
	case c.in.alertSeen:
		return &alertError{err: err, alert: tls.AlertError(c.in.alert), remote: true}
	case c.out.alertSeen:
		return &alertError{err: err, alert: tls.AlertError(c.out.alert)}
	}
	return err
}

// recordScanner follows TLS record boundaries in one direction.
type recordScanner struct {
	hdr  [5]byte
	hdrN int
	left int // body bytes left in the current record

	inAlert bool // the current record is a plain-text alert
	body    [2]byte
	bodyN   int

	// firstHandshake is the wire size of the first handshake record
	// (for the client: the ClientHello).
	firstHandshake int
	// alert is the description of the first fatal plain-text alert.
	alert     uint8
	alertSeen bool
}

// Record content types and alert level (RFC 8446, 5.1 and 6).
const (
	recordAlert     = 21
	recordHandshake = 22
	alertFatal      = 2
)

func (s *recordScanner) feed(p []byte) {
	for len(p) > 0 {
		if s.left == 0 {
			n := copy(s.hdr[s.hdrN:], p)
			s.hdrN += n
			p = p[n:]
			if s.hdrN < len(s.hdr) {
				return
			}
			s.hdrN = 0
			s.left = int(s.hdr[3])<<8 | int(s.hdr[4])
			// Encrypted alerts are longer than two bytes or hidden in
			// application-data records: only plain ones match.
			s.inAlert = s.hdr[0] == recordAlert && s.left == 2
			s.bodyN = 0
			if s.hdr[0] == recordHandshake && s.firstHandshake == 0 {
				s.firstHandshake = s.left + len(s.hdr)
			}
			continue
		}
		n := min(s.left, len(p))
		if s.inAlert {
			for _, b := range p[:n] {
				if s.bodyN < len(s.body) {
					s.body[s.bodyN] = b
					s.bodyN++
				}
			}
			if s.bodyN == len(s.body) && !s.alertSeen && s.body[0] == alertFatal {
				s.alert, s.alertSeen = s.body[1], true
			}
		}
		s.left -= n
		p = p[n:]
	}
}
