package maillog

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits bound what an Aggregator keeps. Zero fields take the defaults.
type Limits struct {
	// QueueIDs caps the queue IDs tracked (default 2000).
	QueueIDs int
	// Attempts caps the attempts kept per queue ID (default 20; the
	// newest are kept).
	Attempts int
	// MX caps the MX addresses counted (default 256).
	MX int
	// Lines caps the failing lines kept verbatim (default 100; the
	// newest are kept).
	Lines int
}

// Default limits.
const (
	DefaultMaxQueueIDs = 2000
	DefaultMaxAttempts = 20
	DefaultMaxMX       = 256
	DefaultMaxLines    = 100
	// maxPending bounds the processes with error lines waiting for their
	// delivery line.
	maxPending = 4096
	// maxPendingPerProcess bounds the error lines waiting per process.
	maxPendingPerProcess = 16
	// pendingTTL is how long an error line waits for its delivery line.
	pendingTTL = 15 * time.Minute
)

func (l Limits) withDefaults() Limits {
	if l.QueueIDs <= 0 {
		l.QueueIDs = DefaultMaxQueueIDs
	}
	if l.Attempts <= 0 {
		l.Attempts = DefaultMaxAttempts
	}
	if l.MX <= 0 {
		l.MX = DefaultMaxMX
	}
	if l.Lines <= 0 {
		l.Lines = DefaultMaxLines
	}
	return l
}

// MXCount is what the log says about one MX address in the window.
type MXCount struct {
	// IP is the MX address; Host the name the MTA logged for it last.
	IP   string `json:"ip"`
	Host string `json:"host,omitempty"`
	// TLSFailures counts failed TLS handshakes (SSL_connect errors, Exim's
	// TLS errors, deliveries deferred for a TLS reason without one).
	TLSFailures int `json:"tls_failures"`
	// ConnectFailures counts failed TCP connections.
	ConnectFailures int `json:"connect_failures"`
	// OtherFailures counts deferrals and bounces for any other reason.
	OtherFailures int `json:"other_failures"`
	// Delivered counts recipients delivered through it.
	Delivered int `json:"delivered"`
	// LastFailure is the time of the newest failure (zero: none).
	LastFailure time.Time `json:"last_failure,omitzero"`
	// LastDelivered is the time of the newest delivery (zero: none).
	LastDelivered time.Time `json:"last_delivered,omitzero"`
}

// Attempt is one delivery attempt of a queued message.
type Attempt struct {
	Time time.Time `json:"time"`
	// MXHost and MXIP are the MX tried; empty when none was (Postfix's
	// relay=none).
	MXHost string `json:"mx_host,omitempty"`
	MXIP   string `json:"mx_ip,omitempty"`
	// Domain is the recipient's domain.
	Domain string `json:"domain,omitempty"`
	DSN    string `json:"dsn,omitempty"`
	// Status is "deferred", "bounced", "expired" or "sent".
	Status string `json:"status"`
	// Reason is the MTA's reason, without Postfix's "delivery temporarily
	// suspended: " prefix.
	Reason string `json:"reason,omitempty"`
	// Suspended is set when the MTA did not try any MX (the destination
	// was marked down after earlier failures).
	Suspended bool `json:"suspended,omitempty"`
	// Errors are the reasons of the error lines the same process logged
	// before this attempt ("SSL_connect error to …: Connection reset by
	// peer"), with their MX.
	Errors []string `json:"errors,omitempty"`
}

// Queued is one message (queue ID) with at least one failed attempt in
// the window.
type Queued struct {
	QueueID string `json:"queue_id"`
	MTA     string `json:"mta"`
	// Domains are its recipients' domains seen in the window.
	Domains []string `json:"domains"`
	// Attempts are the failed attempts, oldest first (at most
	// Limits.Attempts, the newest kept); DroppedAttempts counts the rest.
	Attempts        []Attempt `json:"attempts"`
	DroppedAttempts int       `json:"dropped_attempts,omitempty"`
	// Delivered is set when a later line says the message was sent;
	// DeliveredAt and DeliveredVia then say when and through which MX.
	Delivered    bool      `json:"delivered"`
	DeliveredAt  time.Time `json:"delivered_at,omitzero"`
	DeliveredVia string    `json:"delivered_via,omitempty"`
}

// Summary is what a mail log says about a window.
type Summary struct {
	// Source is the log read: a path or "journald".
	Source string `json:"source"`
	// Since and Until bound the window.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Available is false when the log could not be read; Error says why.
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
	// Truncated is set when the reader stopped before the window's start
	// (its byte cap); FirstTime is then the oldest line's time.
	Truncated bool      `json:"truncated,omitempty"`
	FirstTime time.Time `json:"first_time,omitzero"`
	// BytesRead and LinesRead are what the reader went through;
	// Recognised counts the Postfix/Exim lines understood in the window.
	BytesRead  int64 `json:"bytes_read"`
	LinesRead  int   `json:"lines_read"`
	Recognised int   `json:"recognised_lines"`
	// MX is per MX address, most failures first.
	MX []MXCount `json:"mx"`
	// Queue are the messages with a failed attempt, newest failure first.
	Queue []Queued `json:"queue"`
	// Lines are the newest failing lines, oldest first, verbatim but for
	// addresses reduced to their domain.
	Lines []string `json:"lines"`
	// Dropped* count what the limits left out.
	DroppedQueueIDs int `json:"dropped_queue_ids,omitempty"`
	DroppedAttempts int `json:"dropped_attempts,omitempty"`
	DroppedMX       int `json:"dropped_mx,omitempty"`
	DroppedLines    int `json:"dropped_lines,omitempty"`
}

// Aggregator sums lines of a window. Feed it lines in log order (Add or
// AddLine); ask Summary at the end. Not safe for concurrent use.
type Aggregator struct {
	since, until time.Time
	clock        Clock
	lim          Limits

	mx      map[string]*MXCount
	ids     map[string]*queued
	pending map[string][]Line
	lines   []string // ring of failing lines
	next    int

	sum       Summary
	firstTime time.Time
}

type queued struct {
	Queued
	lastFailure time.Time
	domains     map[string]bool
}

// NewAggregator sums the lines whose time is in [since, until]; clock
// reads their timestamps (AddLine).
func NewAggregator(since, until time.Time, clock Clock, lim Limits) *Aggregator {
	return &Aggregator{
		since: since, until: until, clock: clock, lim: lim.withDefaults(),
		mx: map[string]*MXCount{}, ids: map[string]*queued{}, pending: map[string][]Line{},
	}
}

// AddLine parses a raw line and adds it.
func (a *Aggregator) AddLine(raw string) {
	a.sum.LinesRead++
	a.sum.BytesRead += int64(len(raw)) + 1
	l, ok := Parse(raw, a.clock)
	if !ok {
		return
	}
	a.Add(l)
}

// Add adds one parsed line; lines outside the window are ignored.
func (a *Aggregator) Add(l Line) {
	if a.firstTime.IsZero() || l.Time.Before(a.firstTime) {
		a.firstTime = l.Time
	}
	if l.Time.Before(a.since) || (!a.until.IsZero() && l.Time.After(a.until)) {
		return
	}
	a.sum.Recognised++
	switch l.Event {
	case EventTLSError, EventConnectError:
		if m := a.mxCount(l.IP, l.Host); m != nil {
			if l.Event == EventTLSError {
				m.TLSFailures++
			} else {
				m.ConnectFailures++
			}
			m.LastFailure = later(m.LastFailure, l.Time)
		}
		a.keepLine(l.Raw)
		a.hold(l)
	case EventDelivery:
		a.delivery(l)
	}
}

// processKey ties an error line to the delivery line that follows it:
// the same process (Postfix) or the same message (Exim).
func processKey(l Line) string {
	if l.MTA == MTAExim {
		if l.QueueID != "" {
			return "exim id " + l.QueueID
		}
		if l.PID > 0 {
			return "exim pid " + strconv.Itoa(l.PID)
		}
		return ""
	}
	return l.Program + "[" + strconv.Itoa(l.PID) + "]"
}

func (a *Aggregator) hold(l Line) {
	k := processKey(l)
	if k == "" {
		return
	}
	p, ok := a.pending[k]
	if !ok && len(a.pending) >= maxPending {
		// Drop the whole table rather than track ages: error lines whose
		// delivery line never came are what fills it.
		clear(a.pending)
	}
	if len(p) >= maxPendingPerProcess {
		p = p[1:]
	}
	a.pending[k] = append(p, l)
}

// take returns the error lines held for l's process and forgets them.
func (a *Aggregator) take(l Line) []Line {
	k := processKey(l)
	p := a.pending[k]
	if len(p) == 0 && l.MTA == MTAExim && l.PID > 0 {
		k = "exim pid " + strconv.Itoa(l.PID)
		p = a.pending[k]
	}
	delete(a.pending, k)
	out := p[:0:0]
	for _, e := range p {
		if l.Time.Sub(e.Time) <= pendingTTL {
			out = append(out, e)
		}
	}
	return out
}

func (a *Aggregator) delivery(l Line) {
	errs := a.take(l)
	if l.Status == StatusSent {
		if m := a.mxCount(l.IP, l.Host); m != nil {
			m.Delivered++
			m.LastDelivered = later(m.LastDelivered, l.Time)
		}
		if q := a.ids[l.QueueID]; q != nil {
			q.Delivered, q.DeliveredAt = true, l.Time
			q.DeliveredVia = hostIP(l.Host, l.IP)
			q.addDomain(l.Domain)
		}
		return
	}
	a.keepLine(l.Raw)
	// The error lines already counted toward their MX; a failure without
	// one counts here, by its reason.
	counted := false
	for _, e := range errs {
		counted = counted || e.IP != ""
	}
	if !counted && !l.Suspended {
		if m := a.mxCount(l.IP, l.Host); m != nil {
			switch {
			case tlsReason(l.Reason):
				m.TLSFailures++
			case connectReason(l.Reason):
				m.ConnectFailures++
			default:
				m.OtherFailures++
			}
			m.LastFailure = later(m.LastFailure, l.Time)
		}
	}
	q := a.ids[l.QueueID]
	if q == nil {
		if len(a.ids) >= a.lim.QueueIDs {
			a.sum.DroppedQueueIDs++
			return
		}
		q = &queued{Queued: Queued{QueueID: l.QueueID, MTA: l.MTA}, domains: map[string]bool{}}
		a.ids[l.QueueID] = q
	}
	q.addDomain(l.Domain)
	at := Attempt{Time: l.Time, MXHost: l.Host, MXIP: l.IP, Domain: l.Domain, DSN: l.DSN, Status: l.Status,
		Reason: l.Reason, Suspended: l.Suspended}
	for _, e := range errs {
		at.Errors = append(at.Errors, errorText(e))
		if at.MXIP == "" {
			at.MXHost, at.MXIP = e.Host, e.IP
		}
	}
	if len(q.Attempts) >= a.lim.Attempts {
		q.Attempts = q.Attempts[1:]
		q.DroppedAttempts++
		a.sum.DroppedAttempts++
	}
	q.Attempts = append(q.Attempts, at)
	q.lastFailure = l.Time
	// A failure after a delivery (another recipient, or a new message
	// reusing the ID) makes it undelivered again.
	if q.Delivered && !l.Time.Before(q.DeliveredAt) {
		q.Delivered, q.DeliveredAt, q.DeliveredVia = false, time.Time{}, ""
	}
}

func (q *queued) addDomain(d string) {
	if d == "" || q.domains[d] || len(q.domains) >= 16 {
		return
	}
	q.domains[d] = true
	q.Domains = append(q.Domains, d)
}

func errorText(e Line) string {
	what := "SSL_connect error"
	if e.MTA == MTAExim {
		what = "TLS error"
	}
	if e.Event == EventConnectError {
		what = "connect"
	}
	s := what + " to " + hostIP(e.Host, e.IP)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func hostIP(host, ip string) string {
	if host == "" {
		return ip
	}
	if ip == "" {
		return host
	}
	return host + "[" + ip + "]"
}

func (a *Aggregator) mxCount(ip, host string) *MXCount {
	if ip == "" {
		return nil
	}
	m := a.mx[ip]
	if m == nil {
		if len(a.mx) >= a.lim.MX {
			a.sum.DroppedMX++
			return nil
		}
		m = &MXCount{IP: ip}
		a.mx[ip] = m
	}
	if host != "" && host != ip {
		m.Host = host
	}
	return m
}

func (a *Aggregator) keepLine(raw string) {
	if len(a.lines) < a.lim.Lines {
		a.lines = append(a.lines, raw)
		return
	}
	a.lines[a.next] = raw
	a.next = (a.next + 1) % len(a.lines)
	a.sum.DroppedLines++
}

// tlsReason reports whether a deferral reason is a TLS failure.
func tlsReason(r string) bool {
	return strings.Contains(r, "TLS") || strings.Contains(r, "SSL") || strings.Contains(r, "handshake")
}

// connectReason reports whether a deferral reason is a failed connection.
func connectReason(r string) bool {
	return strings.HasPrefix(r, "connect to ") || isConnectFailure(r) || strings.Contains(r, "Connection timed out") ||
		strings.Contains(r, "Connection refused") || strings.Contains(r, "Network is unreachable")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Summary returns the sums so far; the Aggregator may go on.
func (a *Aggregator) Summary() Summary {
	s := a.sum
	s.Since, s.Until = a.since, a.until
	s.Available = true
	s.FirstTime = a.firstTime
	s.MX = make([]MXCount, 0, len(a.mx))
	for _, m := range a.mx {
		s.MX = append(s.MX, *m)
	}
	slices.SortFunc(s.MX, func(x, y MXCount) int {
		fx, fy := x.TLSFailures+x.ConnectFailures+x.OtherFailures, y.TLSFailures+y.ConnectFailures+y.OtherFailures
		if fx != fy {
			return fy - fx
		}
		return strings.Compare(x.IP, y.IP)
	})
	qs := make([]*queued, 0, len(a.ids))
	for _, q := range a.ids {
		qs = append(qs, q)
	}
	slices.SortFunc(qs, func(x, y *queued) int {
		if c := y.lastFailure.Compare(x.lastFailure); c != 0 {
			return c
		}
		return strings.Compare(x.QueueID, y.QueueID)
	})
	s.Queue = make([]Queued, 0, len(qs))
	for _, q := range qs {
		c := q.Queued
		c.Attempts = slices.Clone(c.Attempts)
		c.Domains = slices.Clone(c.Domains)
		s.Queue = append(s.Queue, c)
	}
	s.Lines = make([]string, 0, len(a.lines))
	s.Lines = append(s.Lines, a.lines[a.next:]...)
	s.Lines = append(s.Lines, a.lines[:a.next]...)
	return s
}
