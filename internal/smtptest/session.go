package smtptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Replies shared by several behaviours.
const (
	gmailName      = "mx.google.com"
	replyReady     = "220 2.0.0 Ready to start TLS"
	replyQuit      = "221 2.0.0 closing connection"
	replyNoMail    = "503 5.5.1 this test server accepts no mail"
	replyUnknown   = "502 5.5.1 Unrecognized command."
	replyMasked500 = "500 5.5.1 Command unrecognized"
	maskedWord     = "XXXXXXXA"
)

// tlsRecordHandshake is the content type of a TLS handshake record.
const tlsRecordHandshake = 22

// session is one connection of a Server.
type session struct {
	s        *Server
	id       int
	behavior Behavior
	raw      net.Conn      // the TCP connection
	conn     net.Conn      // raw, or the TLS connection after STARTTLS
	br       *bufio.Reader // reads conn
	tls      bool
	werr     error // first write error; the session ends on it
	log      *slog.Logger
	lines    []string
}

// run plays the session's behaviour until it ends.
func (ss *session) run() {
	ss.conn = ss.raw
	ss.br = bufio.NewReaderSize(ss.raw, maxLineBytes)
	defer func() { _ = ss.conn.Close() }()
	if !ss.wait(ss.s.delay) {
		return
	}
	ss.touch()
	switch ss.behavior {
	case HangBanner:
		ss.drain()
		return
	case Greet421:
		ss.reply("421 4.7.0 Try again later, closing connection.")
		return
	case GmailRateLimited:
		ss.reply(fmt.Sprintf("421-4.7.28 [%s] Our system has detected an unusual rate of", ss.clientIP()),
			"421-4.7.28 unsolicited mail originating from your IP address. To protect our",
			"421-4.7.28 users from spam, mail sent from your IP address has been temporarily",
			"421 4.7.28 rate limited. "+ss.sessionID()+" - gsmtp")
		return
	case Garbage:
		ss.writeRaw("HTTP/1.1 400 Bad Request\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		ss.record("S: HTTP/1.1 400 Bad Request")
		return
	case EndlessLine:
		ss.endlessLine()
		return
	case EndlessReply:
		ss.endlessReply()
		return
	case Masked:
		ss.reply("220 " + strings.Repeat("*", 28))
	default:
		ss.reply(fmt.Sprintf("220 %s ESMTP %s - gsmtp", gmailName, ss.sessionID()))
	}
	for n := 0; n < maxCommands && ss.werr == nil; n++ {
		line, refused, err := ss.readLine()
		if err != nil {
			ss.log.Debug("session ended", "err", err)
			return
		}
		if refused {
			continue
		}
		if !ss.handle(line) {
			return
		}
	}
	if ss.werr == nil {
		ss.reply("421 4.7.0 Too many commands, closing connection")
	}
}

// handle answers one command line and reports whether the session goes on.
func (ss *session) handle(line string) bool {
	if ss.behavior == CloseAfterBanner {
		return false
	}
	verb, _, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "EHLO", "HELO":
		switch {
		case !ss.tls && ss.behavior == EHLO550:
			ss.reply("550 5.7.1 Client host rejected")
			return true
		case !ss.tls && ss.behavior == EHLO421:
			ss.reply("421 4.7.0 Try again later, closing connection. (EHLO) " + ss.sessionID() + " - gsmtp")
			return false
		case ss.tls && ss.behavior == PostTLS421:
			ss.reply("421 4.7.0 closing")
			return false
		case strings.EqualFold(verb, "HELO"):
			ss.reply("250 " + gmailName + " at your service")
		default:
			ss.reply(ss.ehloReply()...)
		}
	case "STARTTLS":
		return ss.startTLS()
	case "NOOP":
		ss.reply("250 2.0.0 OK")
	case "RSET":
		ss.reply("250 2.1.5 Flushed")
	case "QUIT":
		ss.reply(replyQuit)
		return false
	case "MAIL":
		ss.reply(replyNoMail)
	case "RCPT", "DATA", "BDAT":
		ss.reply("503 5.5.1 MAIL first.")
	case "":
		ss.reply("555 5.5.2 Syntax error.")
	default:
		ss.reply(replyUnknown)
	}
	return ss.werr == nil
}

// sessionID is the session's identifier in Gmail's style, as Gmail puts
// one in its greeting and its refusals.
func (ss *session) sessionID() string { return fmt.Sprintf("ffa0c8e4b3d2-%05d.1", ss.id) }

// clientIP is the peer's address ("unknown" when it cannot be read).
func (ss *session) clientIP() string {
	if host, _, err := net.SplitHostPort(ss.raw.RemoteAddr().String()); err == nil {
		return host
	}
	return "unknown"
}

// ehloReply returns the lines of the EHLO reply, Gmail's extensions as the
// behaviour and the TLS state allow.
func (ss *session) ehloReply() []string {
	ext := []string{gmailName + " at your service, [" + ss.clientIP() + "]", "SIZE 157286400", "8BITMIME"}
	if !ss.tls {
		switch ss.behavior {
		case NoSTARTTLS:
		case Masked, MaskedEHLOOnly:
			ext = append(ext, maskedWord)
		default:
			ext = append(ext, "STARTTLS")
		}
	}
	ext = append(ext, "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8")
	out := make([]string, len(ext))
	for i, e := range ext {
		sep := "-"
		if i == len(ext)-1 {
			sep = " "
		}
		out[i] = "250" + sep + e
	}
	return out
}

// startTLS answers STARTTLS and runs the TLS part of the behaviour. It
// reports whether the session goes on.
func (ss *session) startTLS() bool {
	if ss.tls {
		ss.reply("503 5.5.1 TLS already active")
		return ss.werr == nil
	}
	switch ss.behavior {
	case NoSTARTTLS:
		ss.reply(replyUnknown)
		return ss.werr == nil
	case Masked, MaskedEHLOOnly:
		ss.reply(replyMasked500)
		return ss.werr == nil
	case StartTLS454:
		ss.reply("454 4.7.0 TLS not available due to local problem")
		return ss.werr == nil
	case StartTLS502:
		ss.reply("502 5.5.1 Unrecognized command")
		return ss.werr == nil
	}
	ss.reply(replyReady)
	if ss.werr != nil {
		return false
	}
	if n := ss.br.Buffered(); n > 0 {
		// Plaintext sent after STARTTLS must not leak into the TLS session
		// (the STARTTLS command injection flaw): drop it.
		ss.log.Debug("dropping plaintext pipelined after STARTTLS", "bytes", n)
		_, _ = ss.br.Discard(n)
	}
	conn := ss.raw
	ss.touch()
	switch ss.behavior {
	case ResetAfterReady:
		buf := make([]byte, 64)
		n, err := ss.raw.Read(buf)
		ss.log.Debug("resetting the connection during the ClientHello", "read", n, "err", err)
		ss.reset()
		return false
	case HangAfterReady:
		ss.drain()
		return false
	case DropLargeHello:
		rec, err := readRecord(ss.raw)
		if err != nil {
			ss.log.Debug("reading the first TLS record", "err", err)
			return false
		}
		if len(rec) > ss.s.large {
			ss.log.Debug("resetting the connection on a large ClientHello", "bytes", len(rec), "threshold", ss.s.large)
			ss.reset()
			return false
		}
		ss.log.Debug("ClientHello small enough", "bytes", len(rec), "threshold", ss.s.large)
		conn = &prefixConn{Conn: ss.raw, r: io.MultiReader(bytes.NewReader(rec), ss.raw)}
	}
	tc := tls.Server(conn, ss.tlsConfig())
	if err := tc.Handshake(); err != nil {
		ss.log.Debug("TLS handshake failed", "err", err)
		return false
	}
	st := tc.ConnectionState()
	ss.log.Debug("TLS handshake done", "version", tls.VersionName(st.Version),
		"cipher", tls.CipherSuiteName(st.CipherSuite), "group", st.CurveID.String())
	ss.conn = tc
	ss.br.Reset(tc) // empty: what was buffered before TLS was dropped
	ss.tls = true
	return true
}

// tlsConfig returns the server TLS configuration of the session's
// behaviour.
func (ss *session) tlsConfig() *tls.Config { return ss.s.tlsConfig(ss.behavior) }

// tlsConfig returns the server TLS configuration of behaviour b, made once
// per behaviour and then shared by its sessions (a tls.Config may serve
// many connections at once), so that a session does not pay for a new
// configuration and its session ticket keys.
func (s *Server) tlsConfig(b Behavior) *tls.Config {
	s.tlsMu.Lock()
	defer s.tlsMu.Unlock()
	cfg, ok := s.tlsConfigs[b]
	if !ok {
		cfg = newTLSConfig(&s.certs, b)
		s.tlsConfigs[b] = cfg
	}
	return cfg
}

// newTLSConfig makes the server TLS configuration of behaviour b.
func newTLSConfig(cs *certSet, b Behavior) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{cs.good}, MinVersion: tls.VersionTLS12}
	switch b {
	case ExpiredCert:
		cfg.Certificates = []tls.Certificate{cs.expired}
	case WrongNameCert:
		cfg.Certificates = []tls.Certificate{cs.wrongName}
	case SelfSignedCert:
		cfg.Certificates = []tls.Certificate{cs.selfSigned}
	case UntrustedCA:
		cfg.Certificates = []tls.Certificate{cs.untrusted}
	case TLS10Only:
		cfg.MinVersion = tls.VersionTLS10
		cfg.MaxVersion = tls.VersionTLS10
	case NoSharedCipher:
		cfg.MaxVersion = tls.VersionTLS12
		// RC4: no modern client offers it (and the ECDSA leaf fits it, so
		// the only reason to fail is the cipher).
		cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA}
	}
	return cfg
}

// endlessLine writes "220-" and then bytes without a line end until the
// peer goes away, the server closes or EndlessCap is reached.
func (ss *session) endlessLine() {
	written := ss.writeRaw("220-")
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for ss.werr == nil && written < EndlessCap {
		ss.touch()
		n, err := ss.conn.Write(chunk)
		written += n
		ss.werr = err
	}
	ss.record(fmt.Sprintf("S: 220-xxxx... (a line without end, %d bytes written)", written))
}

// endlessReply writes "220-" continuation lines until the peer goes away,
// the server closes or EndlessCap is reached.
func (ss *session) endlessReply() {
	var buf bytes.Buffer
	written, lines := 0, 0
	for ss.werr == nil && written < EndlessCap {
		buf.Reset()
		for buf.Len() < 32<<10 {
			lines++
			fmt.Fprintf(&buf, "220-%s ESMTP greeting continues, line %d\r\n", gmailName, lines)
		}
		ss.touch()
		n, err := ss.conn.Write(buf.Bytes())
		written += n
		ss.werr = err
	}
	ss.record(fmt.Sprintf("S: 220-%s ESMTP greeting continues, line 1 (and more: %d lines, %d bytes written)", gmailName, lines, written))
}

// readLine reads one command line, bounded by maxLineBytes, and records it.
// An over-long line is skipped and refused with a 500 reply: refused is
// then true.
func (ss *session) readLine() (line string, refused bool, err error) {
	ss.touch()
	b, err := ss.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Skip the rest of the line, up to a bound, and refuse it.
		ss.record("C: " + string(b[:64]) + "... (line too long)")
		total := len(b)
		for errors.Is(err, bufio.ErrBufferFull) && total < maxSkipBytes {
			ss.touch()
			b, err = ss.br.ReadSlice('\n')
			total += len(b)
		}
		if err != nil {
			return "", false, fmt.Errorf("command line longer than %d bytes: %w", total, err)
		}
		ss.reply("500 5.5.2 Line too long")
		return "", true, nil
	}
	if err != nil {
		if len(b) > 0 {
			ss.record("C: " + strings.TrimRight(string(b), "\r\n") + " (unterminated)")
		}
		return "", false, err
	}
	line = strings.TrimRight(string(b), "\r\n")
	ss.record("C: " + line)
	return line, false, nil
}

// reply sends a reply of one or more lines (the first ending in the
// server's Remark) and records it.
func (ss *session) reply(lines ...string) {
	var b strings.Builder
	for i, l := range lines {
		if i == 0 && ss.s.remark != "" {
			l += " " + ss.s.remark
		}
		b.WriteString(l)
		b.WriteString("\r\n")
		ss.record("S: " + l)
	}
	ss.writeRaw(b.String())
}

// writeRaw writes s to the current connection, remembering the first
// error, and returns the bytes written.
func (ss *session) writeRaw(s string) int {
	if ss.werr != nil {
		return 0
	}
	n, err := io.WriteString(ss.conn, s)
	if err != nil {
		ss.log.Debug("write failed", "err", err)
		ss.werr = err
	}
	return n
}

// record appends a transcript line.
func (ss *session) record(line string) { ss.lines = append(ss.lines, line) }

// touch extends the connection deadline by the idle timeout.
func (ss *session) touch() { _ = ss.raw.SetDeadline(time.Now().Add(ss.s.idle)) }

// wait waits d, or less when the server closes; it reports whether the
// server is still open.
func (ss *session) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ss.s.done:
		return false
	}
}

// drain reads and ignores everything until the peer closes, the server
// closes or the idle timeout expires.
func (ss *session) drain() {
	buf := make([]byte, 4096)
	for {
		ss.touch()
		if _, err := ss.raw.Read(buf); err != nil {
			ss.log.Debug("silent session ended", "err", err)
			return
		}
	}
}

// reset closes the TCP connection with SO_LINGER 0, so that the peer gets
// a RST instead of a FIN.
func (ss *session) reset() {
	if tc, ok := ss.raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = ss.raw.Close()
}

// readRecord reads one whole TLS record (header and body) from r.
func readRecord(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("read TLS record header: %w", err)
	}
	if hdr[0] != tlsRecordHandshake {
		return nil, fmt.Errorf("first TLS record has content type %d, not a handshake", hdr[0])
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	rec := make([]byte, 5+n)
	copy(rec, hdr)
	if _, err := io.ReadFull(r, rec[5:]); err != nil {
		return nil, fmt.Errorf("read TLS record body: %w", err)
	}
	return rec, nil
}

// prefixConn is a net.Conn whose reads first return bytes already read.
type prefixConn struct {
	net.Conn
	r io.Reader
}

// Read reads the replayed bytes, then the connection.
func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }
