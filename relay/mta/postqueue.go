// Package mta reads what a relay's own mail tools print: `postqueue -j`
// (Postfix's queue as JSON lines), `openssl s_client -starttls smtp -brief`
// and `posttls-finger`. The parsers are pure functions over the tools'
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
	"sort"
	"strings"
	"sync"
	"time"
)

// MaxPostqueueLine bounds one line of `postqueue -j` output; longer lines
// count as malformed.
const MaxPostqueueLine = 1 << 20

// QueueSummary is what ParsePostqueue finds: Gmail-bound deferred mail.
type QueueSummary struct {
	// Deferred counts messages in the deferred queue with at least one
	// recipient at gmail.com or googlemail.com.
	Deferred int
	// Recipients counts those messages' Gmail recipients.
	Recipients int
	// OldestAge is the age of the oldest such message at now.
	OldestAge time.Duration
	// TopReason is the most common normalised delay reason of the Gmail
	// recipients (ties broken alphabetically).
	TopReason string
	// Reasons counts every normalised reason.
	Reasons map[string]int
	// Messages counts all well-formed lines, Gmail-bound or not.
	Messages int
	// Malformed counts lines that could not be parsed and were skipped.
	Malformed int
	// Warnings holds postqueue's own "postqueue: warning: ..." lines (at
	// most 5), e.g. "Mail system is down -- accessing queue directly".
	Warnings []string
}

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

// IsGmailAddress reports whether addr is at gmail.com or googlemail.com.
func IsGmailAddress(addr string) bool {
	addr = strings.TrimSpace(strings.Trim(strings.TrimSpace(addr), "<>"))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	d := strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	return d == "gmail.com" || d == "googlemail.com"
}

// ParsePostqueue reads `postqueue -j` output: one JSON object per line.
// Lines that are not such an object (or are too long) are skipped and
// counted in Malformed; they are never fatal. The error is only for a
// failure to read r.
func ParsePostqueue(r io.Reader, now time.Time) (QueueSummary, error) {
	s := QueueSummary{Reasons: map[string]int{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var oldest int64
	haveOldest := false
	// The queue may change while it is listed: a message can appear twice.
	counted := map[string]bool{}
	for {
		line, tooLong, err := readLine(br, MaxPostqueueLine)
		if len(line) > 0 || tooLong {
			if tooLong {
				s.Malformed++
			} else if w, ok := bytes.CutPrefix(line, []byte("postqueue: ")); ok {
				if len(s.Warnings) < 5 {
					s.Warnings = append(s.Warnings, clip(string(w), 300))
				}
			} else if msg, ok := decodePostqueueLine(line); !ok {
				s.Malformed++
			} else {
				s.Messages++
				if msg.QueueName == "deferred" && !counted[msg.QueueID] {
					counted[msg.QueueID] = true
					gm := 0
					for _, rc := range msg.Recipients {
						if IsGmailAddress(rc.Address) {
							gm++
							if rc.DelayReason != "" {
								s.Reasons[NormalizeReason(rc.DelayReason)]++
							}
						}
					}
					if gm > 0 {
						s.Deferred++
						s.Recipients += gm
						if msg.ArrivalTime != nil && (!haveOldest || *msg.ArrivalTime < oldest) {
							oldest, haveOldest = *msg.ArrivalTime, true
						}
					}
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
	}
	if haveOldest {
		if age := now.Sub(time.Unix(oldest, 0)); age > 0 {
			s.OldestAge = age
		}
	}
	s.TopReason = topReason(s.Reasons)
	return s, nil
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
// groups: IP addresses become "[IP]" or "IP", Gmail's per-message tokens
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

// maxReasonBytes bounds a normalised reason.
const maxReasonBytes = 300

func isLetter(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }
