// Package mta reads what a relay's own mail tools print: `postqueue -j`
// (Postfix's queue as JSON lines), `openssl s_client -starttls smtp -brief`,
// `posttls-finger`, `postconf` and `exim -bP` settings and PEM CA bundles,
// and says what a TLS policy toward Gmail does to Gmail-bound mail
// (InterpretTLSPolicy). The parsers are pure functions over the tools'
// output; running the tools is the caller's business. Each parser accepts
// any input without panicking, and sorts what it recognises into the probe
// result schema and its failure classes.
package mta

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// MaxPostqueueLine bounds one line of `postqueue -j` output; longer lines
// count as malformed.
const MaxPostqueueLine = 1 << 20

// QueueSummary is what ParsePostqueue and SummarizeQueue find:
// Gmail-bound deferred mail.
type QueueSummary struct {
	// Deferred counts messages in the deferred queue with at least one
	// Gmail-bound recipient (by default: at gmail.com or googlemail.com;
	// SummarizeQueue takes the rule).
	Deferred int
	// Recipients counts those messages' Gmail-bound recipients.
	Recipients int
	// OldestAge is the age of the oldest such message at now: now minus
	// its arrival time (postqueue's arrival_time, Unix seconds), never
	// negative.
	OldestAge time.Duration
	// OldestArrival is that message's arrival time (zero when no message
	// gave one).
	OldestArrival time.Time
	// TopReason is the most common normalised delay reason of the
	// Gmail-bound recipients (ties broken alphabetically).
	TopReason string
	// Reasons counts every normalised reason.
	Reasons map[string]int
	// Groups are the reasons with their queue ids, the most common first,
	// at most MaxReasonGroups of them.
	Groups []ReasonGroup
	// Domains counts the Gmail-bound recipients per domain, with the rule
	// that made the domain Gmail-bound.
	Domains map[string]BoundDomain
	// Messages counts all well-formed lines, Gmail-bound or not.
	Messages int
	// Malformed counts lines that could not be parsed and were skipped.
	Malformed int
	// Dropped counts deferred messages beyond MaxDeferredMessages, left
	// out of the summary.
	Dropped int
	// Warnings holds postqueue's own "postqueue: warning: ..." lines (at
	// most 5), e.g. "Mail system is down -- accessing queue directly".
	Warnings []string
}

// BoundDomain is one Gmail-bound recipient domain of a QueueSummary.
type BoundDomain struct {
	// Why is the rule that made it Gmail-bound (see GmailBoundFunc).
	Why string
	// Recipients counts its deferred recipients.
	Recipients int
}

// ReasonGroup is the Gmail-bound recipients deferred for one normalised
// reason, and the messages they belong to.
type ReasonGroup struct {
	Reason     string
	Recipients int
	Messages   int
	// IDs are the messages, oldest first, at most MaxIDsPerReason.
	IDs []QueuedMessage
	// MoreIDs counts the messages left out of IDs.
	MoreIDs int
}

// QueuedMessage is one deferred message of a ReasonGroup: its queue id,
// its arrival time and the domains (never the addresses) of its
// Gmail-bound recipients deferred for that reason.
type QueuedMessage struct {
	ID      string
	Arrival time.Time
	Domains []string
}

// Bounds of a QueueSummary.
const (
	// MaxDeferredMessages bounds the deferred messages ReadPostqueue keeps.
	MaxDeferredMessages = 200_000
	// MaxReasonGroups bounds QueueSummary.Groups.
	MaxReasonGroups = 10
	// MaxIDsPerReason bounds ReasonGroup.IDs.
	MaxIDsPerReason = 20
	// maxDomainsPerMessage bounds QueuedMessage.Domains.
	maxDomainsPerMessage = 10
	// maxBoundDomains bounds QueueSummary.Domains.
	maxBoundDomains = 100
)

// Why a recipient domain is Gmail-bound.
const (
	// BoundGmail: the domain is gmail.com or googlemail.com.
	BoundGmail = "gmail_domain"
	// BoundGoogleMX: the domain's MX hosts are Google's.
	BoundGoogleMX = "google_mx"
	// BoundConfigured: [agent] gmail_domains lists it.
	BoundConfigured = "configured"
	// BoundMailLog: the mail log shows its delivery attempts going to one
	// of the target's MX hosts.
	BoundMailLog = "mail_log"
)

// GmailBoundFunc says why the recipient domain of deferred message id is
// Gmail-bound (one of the Bound constants), or "" when it is not.
type GmailBoundFunc func(id, domain string) string

// postqueueMessage is one line of `postqueue -j` (Postfix 3.1 and later).
type postqueueMessage struct {
	QueueName   string `json:"queue_name"`
	QueueID     string `json:"queue_id"`
	ArrivalTime *int64 `json:"arrival_time"`
	MessageSize int64  `json:"message_size"`
	Sender      string `json:"sender"`
	Recipients  []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// QueueListing is the deferred part of `postqueue -j` output, reduced to
// what a summary needs: no sender, no local parts of addresses.
type QueueListing struct {
	// Deferred are the deferred messages, each once, in the order listed.
	Deferred []DeferredMessage
	// Messages counts all well-formed lines.
	Messages int
	// Malformed counts lines that could not be parsed.
	Malformed int
	// Dropped counts deferred messages beyond MaxDeferredMessages.
	Dropped int
	// Warnings are postqueue's own warnings (at most 5).
	Warnings []string
}

// DeferredMessage is one deferred message of a QueueListing.
type DeferredMessage struct {
	ID string
	// Arrival is postqueue's arrival_time (zero when absent).
	Arrival    time.Time
	Recipients []DeferredRecipient
}

// DeferredRecipient is one recipient of a DeferredMessage.
type DeferredRecipient struct {
	// Domain is the address's domain, lower-case, without a trailing dot
	// ("" for an address without one).
	Domain string
	// Reason is the normalised delay reason (NormalizeReason).
	Reason string
}

// Domains returns the distinct recipient domains of the listing, sorted.
func (l QueueListing) Domains() []string {
	seen := map[string]bool{}
	for _, m := range l.Deferred {
		for _, r := range m.Recipients {
			if r.Domain != "" {
				seen[r.Domain] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// AddressDomain returns addr's domain, lower-case and without a trailing
// dot, or "" when addr has no "@".
func AddressDomain(addr string) string {
	addr = strings.TrimSpace(strings.Trim(strings.TrimSpace(addr), "<>"))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
}

// IsGmailDomain reports whether domain is gmail.com or googlemail.com.
func IsGmailDomain(domain string) bool {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	return d == "gmail.com" || d == "googlemail.com"
}

// IsGmailAddress reports whether addr is at gmail.com or googlemail.com.
func IsGmailAddress(addr string) bool { return IsGmailDomain(AddressDomain(addr)) }

// ParsePostqueue reads `postqueue -j` output (one JSON object per line)
// and summarises the deferred mail to gmail.com and googlemail.com. Lines
// that are not such an object (or are too long) are skipped and counted in
// Malformed; they are never fatal. The error is only for a failure to read
// r.
func ParsePostqueue(r io.Reader, now time.Time) (QueueSummary, error) {
	l, err := ReadPostqueue(r)
	return SummarizeQueue(l, now, nil), err
}

// ReadPostqueue reads `postqueue -j` output into a QueueListing, keeping
// the deferred messages (at most MaxDeferredMessages). It is as tolerant as
// ParsePostqueue.
func ReadPostqueue(r io.Reader) (QueueListing, error) {
	var l QueueListing
	br := bufio.NewReaderSize(r, 64<<10)
	// The queue may change while it is listed: a message can appear twice.
	counted := map[string]bool{}
	// Reasons repeat: one copy of each.
	reasons := map[string]string{}
	for {
		line, tooLong, err := readLine(br, MaxPostqueueLine)
		if len(line) > 0 || tooLong {
			if tooLong {
				l.Malformed++
			} else if w, ok := bytes.CutPrefix(line, []byte("postqueue: ")); ok {
				if len(l.Warnings) < 5 {
					l.Warnings = append(l.Warnings, clip(string(w), 300))
				}
			} else if msg, ok := decodePostqueueLine(line); !ok {
				l.Malformed++
			} else {
				l.Messages++
				if msg.QueueName == "deferred" && !counted[msg.QueueID] {
					if len(l.Deferred) >= MaxDeferredMessages {
						l.Dropped++
					} else {
						counted[msg.QueueID] = true
						m := DeferredMessage{ID: clip(msg.QueueID, 64)}
						if msg.ArrivalTime != nil {
							m.Arrival = time.Unix(*msg.ArrivalTime, 0)
						}
						for _, rc := range msg.Recipients {
							reason := ""
							if rc.DelayReason != "" {
								n, ok := reasons[rc.DelayReason]
								if !ok {
									n = NormalizeReason(rc.DelayReason)
									if len(reasons) < 10_000 {
										reasons[rc.DelayReason] = n
									}
								}
								reason = n
							}
							m.Recipients = append(m.Recipients, DeferredRecipient{Domain: clip(AddressDomain(rc.Address), 255), Reason: reason})
						}
						l.Deferred = append(l.Deferred, m)
					}
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return l, err
		}
	}
	return l, nil
}

// SummarizeQueue summarises the Gmail-bound deferred mail of l at now.
// bound says which recipients are Gmail-bound; nil means those at
// gmail.com and googlemail.com.
func SummarizeQueue(l QueueListing, now time.Time, bound GmailBoundFunc) QueueSummary {
	if bound == nil {
		bound = func(_, domain string) string {
			if IsGmailDomain(domain) {
				return BoundGmail
			}
			return ""
		}
	}
	s := QueueSummary{
		Reasons:   map[string]int{},
		Domains:   map[string]BoundDomain{},
		Messages:  l.Messages,
		Malformed: l.Malformed,
		Dropped:   l.Dropped,
		Warnings:  l.Warnings,
	}
	type group struct {
		recipients int
		msgs       []QueuedMessage
	}
	groups := map[string]*group{}
	for _, m := range l.Deferred {
		gm := 0
		perReason := map[string][]string{}
		var order []string
		for _, rc := range m.Recipients {
			why := bound(m.ID, rc.Domain)
			if why == "" {
				continue
			}
			gm++
			if d, ok := s.Domains[rc.Domain]; ok || len(s.Domains) < maxBoundDomains {
				d.Why = why
				d.Recipients++
				s.Domains[rc.Domain] = d
			}
			if rc.Reason == "" {
				continue
			}
			s.Reasons[rc.Reason]++
			g := groups[rc.Reason]
			if g == nil {
				g = &group{}
				groups[rc.Reason] = g
			}
			g.recipients++
			ds, seen := perReason[rc.Reason]
			if !seen {
				order = append(order, rc.Reason)
				ds = []string{}
			}
			if rc.Domain != "" && !slices.Contains(ds, rc.Domain) && len(ds) < maxDomainsPerMessage {
				ds = append(ds, rc.Domain)
			}
			perReason[rc.Reason] = ds
		}
		if gm == 0 {
			continue
		}
		s.Deferred++
		s.Recipients += gm
		if !m.Arrival.IsZero() && (s.OldestArrival.IsZero() || m.Arrival.Before(s.OldestArrival)) {
			s.OldestArrival = m.Arrival
		}
		for _, reason := range order {
			ds := perReason[reason]
			sort.Strings(ds)
			groups[reason].msgs = append(groups[reason].msgs, QueuedMessage{ID: m.ID, Arrival: m.Arrival, Domains: ds})
		}
	}
	if !s.OldestArrival.IsZero() {
		if age := now.Sub(s.OldestArrival); age > 0 {
			s.OldestAge = age
		}
	}
	s.TopReason = topReason(s.Reasons)
	for reason, g := range groups {
		// Oldest first; a message without an arrival time last.
		sort.SliceStable(g.msgs, func(i, j int) bool {
			a, b := g.msgs[i].Arrival, g.msgs[j].Arrival
			if a.IsZero() != b.IsZero() {
				return b.IsZero()
			}
			if !a.Equal(b) {
				return a.Before(b)
			}
			return g.msgs[i].ID < g.msgs[j].ID
		})
		rg := ReasonGroup{Reason: reason, Recipients: g.recipients, Messages: len(g.msgs)}
		n := min(len(g.msgs), MaxIDsPerReason)
		rg.IDs = slices.Clone(g.msgs[:n])
		rg.MoreIDs = len(g.msgs) - n
		s.Groups = append(s.Groups, rg)
	}
	sort.Slice(s.Groups, func(i, j int) bool {
		if s.Groups[i].Recipients != s.Groups[j].Recipients {
			return s.Groups[i].Recipients > s.Groups[j].Recipients
		}
		return s.Groups[i].Reason < s.Groups[j].Reason
	})
	if len(s.Groups) > MaxReasonGroups {
		s.Groups = s.Groups[:MaxReasonGroups]
	}
	return s
}

// readLine returns the next line without its newline; tooLong is set (and
// the line discarded) when it exceeds max bytes.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max+1 {
			tooLong = true
			buf = nil
		} else if !tooLong {
			buf = append(buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSpace(buf), tooLong, err
	}
}

func decodePostqueueLine(line []byte) (postqueueMessage, bool) {
	var m postqueueMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&m); err != nil {
		return m, false
	}
	if dec.More() || m.QueueName == "" || m.QueueID == "" {
		return m, false
	}
	return m, true
}

func topReason(reasons map[string]int) string {
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if reasons[keys[i]] != reasons[keys[j]] {
			return reasons[keys[i]] > reasons[keys[j]]
		}
		return keys[i] < keys[j]
	})
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// reasonPatterns are the patterns of NormalizeReason.
type reasonPatterns struct {
	bracketIP, ipv4, ipv6, gsmtpID, queueID, altMX, space *regexp.Regexp
}

// reasonREs compiles the patterns of NormalizeReason at its first use, not
// at the start of every run of the binary.
var reasonREs = sync.OnceValue(func() *reasonPatterns {
	return &reasonPatterns{
		bracketIP: regexp.MustCompile(`\[(?:[0-9]{1,3}\.){3}[0-9]{1,3}\]|\[(?i:ipv6:)?[0-9a-fA-F]*:[0-9a-fA-F:.]*\]`),
		ipv4:      regexp.MustCompile(`\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b`),
		ipv6:      regexp.MustCompile(`\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b`),
		gsmtpID:   regexp.MustCompile(`\S+ - gsmtp\b`),
		// Short queue ids are 8 to 12 upper-case hex digits; long ones
		// (enable_long_queue_ids) are base-52 time, "z", base-51 inode.
		queueID: regexp.MustCompile(`\b(?:[0-9A-F]{8,12}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{10,14}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{2,6})\b`),
		altMX:   regexp.MustCompile(`(?i)\balt[1-9]\.gmail-smtp-in\.l\.google\.com`),
		space:   regexp.MustCompile(`\s+`),
	}
})

// NormalizeReason rewrites a Postfix delay reason so that the same cause
// groups: Postfix's "delivery temporarily suspended: " prefix is dropped
// (what follows is the reason of the failure that suspended delivery), IP
// addresses become "[IP]" or "IP", Gmail's per-message tokens
// before "- gsmtp" and Postfix queue ids are dropped, the altN Gmail MX
// names fold into the primary's (the cause, not the host, is what groups),
// and white space is collapsed. For example
//
//	SSL_connect error to alt2.gmail-smtp-in.l.google.com[142.250.150.27]:25: lost connection
//
// becomes
//
//	SSL_connect error to gmail-smtp-in.l.google.com[IP]:25: lost connection
func NormalizeReason(s string) string {
	re := reasonREs()
	s = strings.TrimSpace(s)
	for {
		rest, ok := cutPrefixFold(s, suspendedPrefix)
		if !ok {
			break
		}
		s = strings.TrimSpace(rest)
	}
	s = re.gsmtpID.ReplaceAllString(s, "ID - gsmtp")
	s = re.bracketIP.ReplaceAllString(s, "[IP]")
	s = re.ipv4.ReplaceAllString(s, "IP")
	s = re.ipv6.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Count(m, ":") >= 2 {
			return "IP"
		}
		return m
	})
	s = re.queueID.ReplaceAllStringFunc(s, func(m string) string {
		// A queue id mixes letters and digits; a plain number (a size, a
		// port) or a word is left alone.
		if strings.ContainsAny(m, "0123456789") && strings.IndexFunc(m, isLetter) >= 0 {
			return "QUEUEID"
		}
		return m
	})
	s = re.altMX.ReplaceAllString(s, "gmail-smtp-in.l.google.com")
	s = clip(s, maxReasonBytes)
	return re.space.ReplaceAllString(strings.TrimSpace(strings.TrimSuffix(s, "…")), " ")
}

// suspendedPrefix is what Postfix puts before the reason of the last
// failure when it stops trying a destination for a while: the cause is
// the same as that failure's.
const suspendedPrefix = "delivery temporarily suspended:"

// cutPrefixFold is strings.CutPrefix ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// maxReasonBytes bounds a normalised reason.
const maxReasonBytes = 300

func isLetter(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }
