// Package maillog reads what a relay's own MTA logged about its deliveries:
// Postfix (syslog, journald or its own maillog_file) and Exim (main.log)
// lines are parsed into Lines, and an Aggregator sums the lines of a time
// window into a Summary: per target MX IP, the TLS and connection failures
// and the successful deliveries; per queue ID with a failed attempt, the
// attempts (time, MX host and IP, DSN, reason) and whether the mail was
// delivered later; and the last failing lines, with every address reduced
// to its domain.
//
// Reading is bounded in time and memory: ReadFile reads a log backwards
// from its end only as far as the window needs (and into the rotated
// file.1 when the window reaches past the current file's start), with a cap
// on the bytes scanned; ReadJournal asks journalctl for the window, newest
// first, through a CommandRunner. An Aggregator caps the queue IDs,
// attempts, MX addresses and lines it keeps and counts what it dropped.
// Any input is tolerated: a line that is not understood is skipped.
//
// The package uses the standard library only. What is kept and sent to the
// bot is documented in docs/agent.md ("The mail log").
package maillog

import (
	"strconv"
	"strings"
	"time"
)

// MTA names of a Line.
const (
	MTAPostfix = "postfix"
	MTAExim    = "exim"
)

// Event is what a line says.
type Event string

// Events. Lines that say none of these are not returned by Parse.
const (
	// EventTLSError is a failed TLS handshake toward an MX: Postfix's
	// "SSL_connect error to host[ip]:port: …", Exim's "TLS error on
	// connection to host [ip] …".
	EventTLSError Event = "tls_error"
	// EventConnectError is a failed TCP connection toward an MX: Postfix's
	// "connect to host[ip]:port: Connection timed out", Exim's
	// "host [ip] Connection refused".
	EventConnectError Event = "connect_error"
	// EventDelivery is a delivery attempt's outcome for one recipient:
	// Postfix's "QUEUEID: to=<…>, relay=…, dsn=…, status=…", Exim's
	// "=>", "->", "==" and "**" lines.
	EventDelivery Event = "delivery"
)

// Delivery statuses.
const (
	StatusSent     = "sent"
	StatusDeferred = "deferred"
	StatusBounced  = "bounced"
	StatusExpired  = "expired"
)

// suspendedPrefix is what Postfix puts before the reason of a delivery it
// did not even try because the destination is marked down.
const suspendedPrefix = "delivery temporarily suspended: "

// MaxLineBytes is the longest line Parse looks at; the rest is ignored.
const MaxLineBytes = 4096

// Line is one understood log line.
type Line struct {
	// Time is the line's timestamp.
	Time time.Time
	// MTA is MTAPostfix or MTAExim.
	MTA string
	// Program is the syslog tag without the process ID ("postfix/smtp");
	// empty for Exim's main.log.
	Program string
	// PID is the logging process's ID, 0 when the line has none.
	PID int
	// Event is what the line says.
	Event Event
	// QueueID is Postfix's queue ID or Exim's message ID, when the line
	// has one.
	QueueID string
	// Domain is the recipient's domain (lower case) of a delivery line;
	// the local part is never kept.
	Domain string
	// Host and IP are the MX the line is about; Port when logged.
	Host string
	IP   string
	Port int
	// DSN is Postfix's enhanced status code ("4.7.5").
	DSN string
	// Status is StatusSent, StatusDeferred, StatusBounced or
	// StatusExpired for a delivery line.
	Status string
	// Reason is the error text: of an error line, what follows the MX;
	// of a delivery line, the text in parentheses (Postfix) or after the
	// defer code (Exim), with Postfix's "delivery temporarily suspended: "
	// prefix removed.
	Reason string
	// Suspended is set when Postfix did not try the MX at all
	// ("delivery temporarily suspended: …").
	Suspended bool
	// Raw is the whole line, capped at MaxLineBytes, with every e-mail
	// address reduced to its domain (Redact).
	Raw string
}

// Clock tells Parse how to read timestamps without a year or a zone.
type Clock struct {
	// Now is the reader's time: an RFC 3164 timestamp ("Dec  4 19:40:01")
	// gets the year that puts it at most a day after Now.
	Now time.Time
	// Location is the zone of timestamps without one (default time.Local).
	Location *time.Location
}

func (c Clock) loc() *time.Location {
	if c.Location != nil {
		return c.Location
	}
	return time.Local
}

// Parse reads one log line. It returns false for a line without a
// timestamp it knows, from a program other than Postfix or Exim, or that
// says nothing Line can hold. It never panics, whatever the input.
func Parse(line string, c Clock) (Line, bool) {
	if len(line) > MaxLineBytes {
		line = line[:MaxLineBytes]
	}
	line = strings.TrimRight(line, "\r\n")
	t, rest, exim, ok := parseHeader(line, c)
	if !ok {
		return Line{}, false
	}
	var l Line
	if exim {
		l, ok = parseExim(rest)
	} else {
		prog, pid, msg, ok2 := parseTag(rest)
		if !ok2 {
			return Line{}, false
		}
		base := prog
		if i := strings.IndexByte(prog, '/'); i >= 0 {
			base = prog[:i]
		}
		switch {
		case strings.HasPrefix(base, "postfix"):
			l, ok = parsePostfix(prog, msg)
		case base == "exim" || base == "exim4":
			l, ok = parseExim(msg)
		default:
			return Line{}, false
		}
		if ok {
			l.Program, l.PID = prog, pid
		}
	}
	if !ok {
		return Line{}, false
	}
	l.Time = t
	l.Raw = Redact(line)
	return l, true
}

// Timestamp returns the time at the start of line, in any format Parse
// knows, and whether there was one.
func Timestamp(line string, c Clock) (time.Time, bool) {
	t, _, _, ok := parseHeader(line, c)
	return t, ok
}

// parseHeader reads the timestamp and returns the rest of the line: for
// syslog formats "host prog[pid]: msg" (exim false), for Exim's main.log
// "[pid] msg" or "msg" (exim true).
func parseHeader(s string, c Clock) (t time.Time, rest string, exim bool, ok bool) {
	if len(s) < 15 {
		return time.Time{}, "", false, false
	}
	if isDigit(s[0]) {
		// ISO: "2026-12-04T19:40:01.123+00:00 host …" (RFC 3339, rsyslog,
		// journalctl -o short-iso) or "2026-12-04 19:40:01 …" (Exim).
		if len(s) < 19 || s[4] != '-' || s[7] != '-' {
			return time.Time{}, "", false, false
		}
		switch s[10] {
		case 'T':
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				return time.Time{}, "", false, false
			}
			t, ok := parseISO(s[:end], c)
			if !ok {
				return time.Time{}, "", false, false
			}
			host, rest, ok := strings.Cut(s[end+1:], " ")
			if !ok || host == "" {
				return time.Time{}, "", false, false
			}
			return t, rest, false, true
		case ' ':
			ts := s[:19]
			rest := s[19:]
			frac := 0
			if len(rest) >= 4 && rest[0] == '.' && isDigit(rest[1]) && isDigit(rest[2]) && isDigit(rest[3]) {
				frac = int(rest[1]-'0')*100 + int(rest[2]-'0')*10 + int(rest[3]-'0')
				rest = rest[4:]
			}
			loc := c.loc()
			if len(rest) >= 6 && rest[0] == ' ' && (rest[1] == '+' || rest[1] == '-') && allDigits(rest[2:6]) {
				if z, err := time.Parse("-0700", rest[1:6]); err == nil {
					loc = z.Location()
					rest = rest[6:]
				}
			}
			t, ok := civil(ts[0:4], ts[5:7], ts[8:10], ts[11:19], loc)
			if !ok || ts[13] != ':' {
				return time.Time{}, "", false, false
			}
			t = t.Add(time.Duration(frac) * time.Millisecond)
			return t, strings.TrimPrefix(rest, " "), true, true
		}
		return time.Time{}, "", false, false
	}
	// RFC 3164 and Postfix's maillog_file: "Dec  4 19:40:01 host …",
	// "Dec 04 19:37:16 host …".
	mon, ok := months[s[:3]]
	if !ok || s[3] != ' ' {
		return time.Time{}, "", false, false
	}
	i := 4
	if s[i] == ' ' {
		i++
	}
	day := 0
	for j := 0; j < 2 && i < len(s) && isDigit(s[i]); j++ {
		day = day*10 + int(s[i]-'0')
		i++
	}
	if day < 1 || day > 31 || i+9 > len(s) || s[i] != ' ' {
		return time.Time{}, "", false, false
	}
	hms := s[i+1 : i+9]
	h, m, sec, ok := clock(hms)
	if !ok || (len(s) > i+9 && s[i+9] != ' ') {
		return time.Time{}, "", false, false
	}
	rest = strings.TrimPrefix(s[i+9:], " ")
	// Some syslog daemons add fractional seconds and a year or zone in
	// the host's place; the host is whatever comes first.
	host, rest, ok := strings.Cut(rest, " ")
	if !ok || host == "" {
		return time.Time{}, "", false, false
	}
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	loc := c.loc()
	year := now.In(loc).Year()
	t = time.Date(year, mon, day, h, m, sec, 0, loc)
	if t.After(now.Add(24 * time.Hour)) {
		t = time.Date(year-1, mon, day, h, m, sec, 0, loc)
	}
	return t, rest, false, true
}

var months = map[string]time.Month{
	"Jan": time.January, "Feb": time.February, "Mar": time.March, "Apr": time.April,
	"May": time.May, "Jun": time.June, "Jul": time.July, "Aug": time.August,
	"Sep": time.September, "Oct": time.October, "Nov": time.November, "Dec": time.December,
}

func parseISO(s string, c Clock) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700", "2006-01-02T15:04:05.999999999"} {
		loc := time.UTC
		if layout == "2006-01-02T15:04:05.999999999" {
			loc = c.loc()
		}
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func civil(y, mo, d, hms string, loc *time.Location) (time.Time, bool) {
	year, err1 := strconv.Atoi(y)
	month, err2 := strconv.Atoi(mo)
	day, err3 := strconv.Atoi(d)
	h, m, s, ok := clock(hms)
	if err1 != nil || err2 != nil || err3 != nil || !ok || month < 1 || month > 12 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, h, m, s, 0, loc), true
}

func clock(s string) (h, m, sec int, ok bool) {
	if len(s) != 8 || s[2] != ':' || s[5] != ':' || !allDigits(s[0:2]) || !allDigits(s[3:5]) || !allDigits(s[6:8]) {
		return 0, 0, 0, false
	}
	h = int(s[0]-'0')*10 + int(s[1]-'0')
	m = int(s[3]-'0')*10 + int(s[4]-'0')
	sec = int(s[6]-'0')*10 + int(s[7]-'0')
	if h > 23 || m > 59 || sec > 60 {
		return 0, 0, 0, false
	}
	return h, m, sec, true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// parseTag splits "postfix/smtp[123]: msg".
func parseTag(s string) (prog string, pid int, msg string, ok bool) {
	colon := strings.Index(s, ": ")
	if colon <= 0 {
		return "", 0, "", false
	}
	tag := s[:colon]
	msg = s[colon+2:]
	if strings.HasSuffix(tag, "]") {
		open := strings.LastIndexByte(tag, '[')
		if open <= 0 {
			return "", 0, "", false
		}
		n, err := strconv.Atoi(tag[open+1 : len(tag)-1])
		if err != nil || n < 0 {
			return "", 0, "", false
		}
		return tag[:open], n, msg, true
	}
	if strings.ContainsAny(tag, " \t") {
		return "", 0, "", false
	}
	return tag, 0, msg, true
}

// parsePostfix reads the message of a Postfix line.
func parsePostfix(prog, msg string) (Line, bool) {
	l := Line{MTA: MTAPostfix}
	if rest, ok := strings.CutPrefix(msg, "SSL_connect error to "); ok {
		l.Event = EventTLSError
		return l, hostAddr(&l, rest)
	}
	if rest, ok := strings.CutPrefix(msg, "connect to "); ok {
		l.Event = EventConnectError
		return l, hostAddr(&l, rest)
	}
	id, rest, ok := strings.Cut(msg, ": ")
	if !ok || !isQueueID(id) || !strings.HasPrefix(rest, "to=<") {
		return Line{}, false
	}
	l.QueueID = id
	l.Event = EventDelivery
	to := rest[len("to=<"):]
	end := strings.IndexByte(to, '>')
	if end < 0 {
		return Line{}, false
	}
	l.Domain = domainOf(to[:end])
	fields := to[end+1:]
	if v, ok := field(fields, "relay="); ok {
		if v != "none" && v != "local" && v != "virtual" {
			hostAddr(&l, v)
		}
	}
	if v, ok := field(fields, "dsn="); ok {
		l.DSN = v
	}
	i := strings.Index(fields, "status=")
	if i < 0 {
		return Line{}, false
	}
	st := fields[i+len("status="):]
	word, reason, _ := strings.Cut(st, " ")
	switch word {
	case StatusSent, StatusDeferred, StatusBounced, StatusExpired:
	default:
		return Line{}, false
	}
	l.Status = word
	if strings.HasPrefix(reason, "(") {
		reason = reason[1:]
		if j := strings.LastIndexByte(reason, ')'); j >= 0 {
			reason = reason[:j]
		}
	}
	if r, ok := strings.CutPrefix(reason, suspendedPrefix); ok {
		l.Suspended, reason = true, r
	}
	l.Reason = reason
	return l, true
}

// field returns the value of "name" in Postfix's ", "-separated fields.
func field(s, name string) (string, bool) {
	i := strings.Index(s, name)
	if i < 0 {
		return "", false
	}
	v := s[i+len(name):]
	if j := strings.Index(v, ", "); j >= 0 {
		v = v[:j]
	}
	return v, true
}

// hostAddr reads Postfix's "host[ip]:port" (and ": reason" after it)
// into l.
func hostAddr(l *Line, s string) bool {
	open := strings.IndexByte(s, '[')
	if open <= 0 {
		return false
	}
	cls := strings.IndexByte(s[open:], ']')
	if cls < 0 {
		return false
	}
	cls += open
	l.Host = strings.ToLower(s[:open])
	l.IP = s[open+1 : cls]
	rest := s[cls+1:]
	l.Port, rest = portSuffix(rest)
	if l.Event != EventDelivery {
		l.Reason = strings.TrimPrefix(rest, ": ")
	}
	return l.IP != "" && !strings.ContainsAny(l.Host, " \t")
}

// isQueueID accepts Postfix's short (hex) and long queue IDs.
func isQueueID(s string) bool {
	if len(s) < 5 || len(s) > 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !isDigit(b) && (b < 'A' || b > 'Z') && (b < 'a' || b > 'z') {
			return false
		}
	}
	return true
}

// isEximID accepts Exim's message IDs: "1rAbCd-000123-Ab" and the longer
// form of Exim 4.97 and later ("1rAbCd-00000000123-AbCd").
func isEximID(s string) bool {
	a, rest, ok := strings.Cut(s, "-")
	if !ok || len(a) != 6 {
		return false
	}
	b, c, ok := strings.Cut(rest, "-")
	if !ok || len(b) < 6 || len(b) > 11 || len(c) < 2 || len(c) > 4 {
		return false
	}
	return alnum(a) && alnum(b) && alnum(c)
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !isDigit(b) && (b < 'A' || b > 'Z') && (b < 'a' || b > 'z') {
			return false
		}
	}
	return true
}

// parseExim reads an Exim main.log message (after the timestamp).
func parseExim(msg string) (Line, bool) {
	l := Line{MTA: MTAExim}
	// Optional "[pid] " (log_selector +pid).
	if strings.HasPrefix(msg, "[") {
		if end := strings.IndexByte(msg, ']'); end > 1 {
			if n, err := strconv.Atoi(msg[1:end]); err == nil && n >= 0 {
				l.PID = n
				msg = strings.TrimPrefix(msg[end+1:], " ")
			}
		}
	}
	if id, rest, ok := strings.Cut(msg, " "); ok && isEximID(id) {
		l.QueueID = id
		msg = rest
	}
	if rest, ok := strings.CutPrefix(msg, "TLS error on connection to "); ok {
		l.Event = EventTLSError
		if !eximHost(&l, rest) {
			return Line{}, false
		}
		return l, true
	}
	if len(msg) > 3 && msg[2] == ' ' {
		var status string
		switch msg[:2] {
		case "=>", "->":
			status = StatusSent
		case "==":
			status = StatusDeferred
		case "**":
			status = StatusBounced
		}
		if status != "" {
			if l.QueueID == "" {
				return Line{}, false
			}
			l.Event, l.Status = EventDelivery, status
			addr, rest, _ := strings.Cut(msg[3:], " ")
			l.Domain = domainOf(addr)
			if i := strings.Index(rest, "H="); i >= 0 {
				eximHost(&l, rest[i+2:])
			}
			l.Reason = eximReason(rest)
			return l, true
		}
	}
	// "host [ip] Connection timed out" with or without "H=".
	if l.QueueID != "" {
		s := strings.TrimPrefix(msg, "H=")
		if open := strings.Index(s, " ["); open > 0 && !strings.ContainsAny(s[:open], " \t") {
			if cls := strings.IndexByte(s, ']'); cls > open {
				tail := strings.TrimLeft(s[cls+1:], ":0123456789")
				tail = strings.TrimPrefix(tail, " ")
				if isConnectFailure(tail) {
					l.Event = EventConnectError
					eximHost(&l, s)
					l.Reason = tail
					return l, true
				}
			}
		}
	}
	return Line{}, false
}

// eximHost reads "host [ip]:port" (port optional) and the reason after
// it into l.
func eximHost(l *Line, s string) bool {
	open := strings.Index(s, " [")
	if open <= 0 {
		return false
	}
	cls := strings.IndexByte(s[open:], ']')
	if cls < 0 {
		return false
	}
	cls += open
	host := s[:open]
	if strings.ContainsAny(host, " \t") {
		return false
	}
	l.Host = strings.ToLower(host)
	l.IP = s[open+2 : cls]
	rest := s[cls+1:]
	l.Port, rest = portSuffix(rest)
	if l.Event == EventTLSError {
		l.Reason = strings.TrimPrefix(strings.TrimPrefix(rest, " "), ": ")
	}
	return l.IP != ""
}

// eximReason is the error text of an Exim delivery line: after
// "defer (N)" and the host, or after the router/transport's ": ".
func eximReason(rest string) string {
	if i := strings.Index(rest, " defer ("); i >= 0 {
		r := rest[i+len(" defer ("):]
		if j := strings.IndexByte(r, ')'); j >= 0 {
			r = r[j+1:]
		}
		if strings.HasPrefix(r, " H=") {
			if j := strings.Index(r, "]"); j >= 0 {
				r = r[j+1:]
				r = strings.TrimLeft(r, ":0123456789")
			}
		}
		return strings.TrimSpace(strings.TrimPrefix(r, ":"))
	}
	if strings.Contains(rest, " C=\"") || strings.Contains(rest, " X=") {
		return ""
	}
	if i := strings.Index(rest, ": "); i >= 0 {
		return rest[i+2:]
	}
	return ""
}

func isConnectFailure(s string) bool {
	for _, p := range []string{"Connection timed out", "Connection refused", "Network is unreachable", "No route to host", "Connection reset by peer"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// domainOf is the lower-case domain of an address ("" without one).
func domainOf(addr string) string {
	addr = strings.Trim(addr, "<>")
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || i == len(addr)-1 {
		return ""
	}
	d := strings.ToLower(addr[i+1:])
	if len(d) > 253 || strings.ContainsAny(d, " \t<>,;\"") {
		return ""
	}
	return d
}

// Redact reduces every e-mail address in s to its domain: "to=<user3@gmail.com>"
// becomes "to=<*@gmail.com>". Local parts never leave the relay.
func Redact(s string) string {
	if strings.IndexByte(s, '@') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		j := i
		for j > last && localChar(s[j-1]) {
			j--
		}
		if j == i {
			continue
		}
		b.WriteString(s[last:j])
		b.WriteByte('*')
		last = i
	}
	b.WriteString(s[last:])
	return b.String()
}

// localChar is a byte of an address's local part as logs show it.
func localChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0
}

// portSuffix reads an optional ":port" (at most five digits, up to 65535)
// at the start of rest, as in "host[ip]:25: …", and returns the port (0
// when there is none or it is out of range) and what follows it.
func portSuffix(rest string) (int, string) {
	p, ok := strings.CutPrefix(rest, ":")
	if !ok {
		return 0, rest
	}
	n := 0
	for n < len(p) && isDigit(p[n]) && n < 5 {
		n++
	}
	port, err := strconv.Atoi(p[:n])
	if err != nil || port > 65535 {
		port = 0
	}
	return port, p[n:]
}
