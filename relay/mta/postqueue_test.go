package mta

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var queueNow = time.Unix(1772445600, 0) // 2026-03-02T10:00:00Z

func TestParsePostqueueMixed(t *testing.T) {
	data, err := os.ReadFile("../testdata/postqueue/mixed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParsePostqueue(bytes.NewReader(data), queueNow)
	if err != nil {
		t.Fatal(err)
	}
	// Gmail-bound deferred messages: 4C1F81F4D1 (listed twice),
	// 4LxXwb1Pm6z9sG4 (googlemail) and 5D2A91F4E2 (two Gmail recipients).
	if s.Deferred != 3 || s.Recipients != 4 {
		t.Errorf("deferred %d recipients %d", s.Deferred, s.Recipients)
	}
	if s.OldestAge != 2*time.Hour {
		t.Errorf("oldest %s", s.OldestAge)
	}
	// Truncated object, JSON array, object without queue_id; postqueue's
	// own warning is kept apart.
	if s.Malformed != 3 {
		t.Errorf("malformed %d", s.Malformed)
	}
	if len(s.Warnings) != 1 || s.Warnings[0] != "warning: malformed showq server reply" {
		t.Errorf("warnings %q", s.Warnings)
	}
	if s.Messages != 7 {
		t.Errorf("messages %d", s.Messages)
	}
	want := "SSL_connect error to gmail-smtp-in.l.google.com[IP]:25: lost connection"
	if s.TopReason != want || s.Reasons[want] != 2 {
		t.Errorf("top reason %q, reasons %v", s.TopReason, s.Reasons)
	}
	gsmtp := "host gmail-smtp-in.l.google.com[IP] said: 421-4.7.28 Gmail has detected an unusual rate of unsolicited mail. https://support.google.com/mail/?p=UnsolicitedRateLimitError ID - gsmtp (in reply to end of DATA command)"
	if s.Reasons[gsmtp] != 1 {
		t.Errorf("reasons %v", s.Reasons)
	}
}

func TestParsePostqueueEdges(t *testing.T) {
	s, err := ParsePostqueue(strings.NewReader(""), queueNow)
	if err != nil || s.Deferred != 0 || s.TopReason != "" || s.OldestAge != 0 {
		t.Errorf("empty queue: %+v %v", s, err)
	}
	// A line longer than the bound is skipped, and parsing goes on.
	long := `{"queue_name":"deferred","queue_id":"AAAA1111","sender":"` + strings.Repeat("x", MaxPostqueueLine) + `","recipients":[]}`
	ok := `{"queue_name":"deferred","queue_id":"BBBB2222","arrival_time":1772445500,"recipients":[{"address":"a@gmail.com","delay_reason":"r"}]}`
	s, err = ParsePostqueue(strings.NewReader(long+"\n"+ok), queueNow)
	if err != nil || s.Malformed != 1 || s.Deferred != 1 || s.OldestAge != 100*time.Second {
		t.Errorf("long line: %+v %v", s, err)
	}
	// Clocks disagree: an arrival in the future is not a negative age.
	s, _ = ParsePostqueue(strings.NewReader(`{"queue_name":"deferred","queue_id":"CCCC3333","arrival_time":1772449999,"recipients":[{"address":"a@gmail.com"}]}`), queueNow)
	if s.OldestAge != 0 || s.Deferred != 1 {
		t.Errorf("future arrival: %+v", s)
	}
}

func TestIsGmailAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"a@gmail.com": true, "<A@Gmail.Com>": true, "a@googlemail.com": true, "a@gmail.com.": true,
		"a@gmail.co": false, "a@notgmail.com": false, "a@gmail.com.evil.example": false, "gmail.com": false, "": false,
	} {
		if IsGmailAddress(addr) != want {
			t.Errorf("%q: want %v", addr, want)
		}
	}
}

func TestNormalizeReason(t *testing.T) {
	tests := map[string]string{
		"SSL_connect error to alt3.gmail-smtp-in.l.google.com[2607:f8b0:4023:c0b::1a]:25: Connection reset by peer": "SSL_connect error to gmail-smtp-in.l.google.com[IP]:25: Connection reset by peer",
		"connect to 142.250.102.27:25: Connection timed out":                                                        "connect to IP:25: Connection timed out",
		"host relay.example[192.0.2.1] said: 250 2.0.0 Ok: queued as 3F1A2B4C5D (in reply to end of DATA command)":  "host relay.example[IP] said: 250 2.0.0 Ok: queued as QUEUEID (in reply to end of DATA command)",
		"host x[IPv6:2001:db8::1] said: 452 4.3.1 Insufficient system storage SIZE 157286400":                       "host x[IP] said: 452 4.3.1 Insufficient system storage SIZE 157286400",
		"  lost   connection \t with x  ": "lost connection with x",
		"delivery temporarily suspended: SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]:25: lost connection": "SSL_connect error to gmail-smtp-in.l.google.com[IP]:25: lost connection",
		// The prefix Postfix adds once it suspends a destination goes, so
		// that the suspended recipients group with the failure itself.
		"delivery temporarily suspended: Cannot start TLS: handshake failure":   "Cannot start TLS: handshake failure",
		"Delivery temporarily suspended:   Cannot start TLS: handshake failure": "Cannot start TLS: handshake failure",
	}
	for in, want := range tests {
		if got := NormalizeReason(in); got != want {
			t.Errorf("NormalizeReason(%q)\n got %q\nwant %q", in, got, want)
		}
		if again := NormalizeReason(want); again != want {
			t.Errorf("not idempotent: %q -> %q", want, again)
		}
	}
	if got := NormalizeReason(strings.Repeat("é", 400)); len(got) > maxReasonBytes {
		t.Errorf("long reason kept %d bytes", len(got))
	}
}

// Captured from a real Postfix 3.7.11 (Debian) whose relayhost was a
// scripted STARTTLS server on loopback that resets the handshake, with
// smtp_tls_security_level = encrypt; the messages never left the host.
func TestParsePostqueueRealPostfix(t *testing.T) {
	data, err := os.ReadFile("../testdata/postqueue/postfix-3.7-deferred.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1795736810+600, 0)
	s, err := ParsePostqueue(bytes.NewReader(data), now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Deferred != 3 || s.Recipients != 3 || s.Malformed != 0 || s.Messages != 3 {
		t.Errorf("%+v", s)
	}
	if s.OldestAge != 601*time.Second || s.TopReason != "Cannot start TLS: handshake failure" {
		t.Errorf("oldest %s, top reason %q", s.OldestAge, s.TopReason)
	}
	empty, err := os.ReadFile("../testdata/postqueue/postfix-3.7-empty.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	s, _ = ParsePostqueue(bytes.NewReader(empty), now)
	if s.Deferred != 0 || s.Messages != 0 {
		t.Errorf("empty queue %+v", s)
	}
	// With the mail system stopped, postqueue reads the queue directly
	// and says so on stderr (exit status 0).
	down := "postqueue: warning: Mail system is down -- accessing queue directly (Connect to the Postfix showq service: Connection refused)\n" + string(data)
	s, _ = ParsePostqueue(strings.NewReader(down), now)
	if s.Deferred != 3 || s.Malformed != 0 || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "Mail system is down") {
		t.Errorf("mail system down: %+v", s)
	}
}

// The relay: deferred mail to gmail.com, googlemail.com and a
// Google-hosted customer domain, some of it "delivery temporarily
// suspended". With a rule that counts the customer domain, all of it is
// Gmail-bound, in one reason group, with its queue ids, oldest first.
func TestSummarizeQueueWorkspaceAndSuspended(t *testing.T) {
	in := strings.Join([]string{
		`{"queue_name":"deferred","queue_id":"4D8E45103FE","arrival_time":1772445573,"recipients":[{"address":"user3@gmail.com","delay_reason":"Cannot start TLS: handshake failure"}]}`,
		`{"queue_name":"deferred","queue_id":"467615103FA","arrival_time":1772445580,"recipients":[{"address":"user2@GoogleMail.com.","delay_reason":"delivery temporarily suspended: Cannot start TLS: handshake failure"}]}`,
		`{"queue_name":"deferred","queue_id":"5A1B2C3D4E5","arrival_time":1772445590,"recipients":[{"address":"ceo@workspace-customer.test","delay_reason":"delivery temporarily suspended: Cannot start TLS: handshake failure"},{"address":"cfo@workspace-customer.test","delay_reason":"Cannot start TLS: handshake failure"},{"address":"x@elsewhere.test","delay_reason":"connect to mx.elsewhere.test[192.0.2.1]:25: Connection refused"}]}`,
		`{"queue_name":"deferred","queue_id":"6B2C3D4E5F6","arrival_time":1772445000,"recipients":[{"address":"x@elsewhere.test","delay_reason":"connect to mx.elsewhere.test[192.0.2.1]:25: Connection refused"}]}`,
		`{"queue_name":"active","queue_id":"7C3D4E5F607","arrival_time":1772440000,"recipients":[{"address":"user9@gmail.com"}]}`,
	}, "\n")
	l, err := ReadPostqueue(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.Domains(), " "); got != "elsewhere.test gmail.com googlemail.com workspace-customer.test" {
		t.Errorf("domains %q", got)
	}
	// By name alone, the customer domain's mail is not counted.
	s := SummarizeQueue(l, queueNow, nil)
	if s.Deferred != 2 || s.Recipients != 2 {
		t.Errorf("by name: deferred %d recipients %d", s.Deferred, s.Recipients)
	}
	bound := func(id, domain string) string {
		switch {
		case IsGmailDomain(domain):
			return BoundGmail
		case domain == "workspace-customer.test":
			return BoundGoogleMX
		}
		return ""
	}
	s = SummarizeQueue(l, queueNow, bound)
	checkGroups(t, s)
	if s.Deferred != 3 || s.Recipients != 4 {
		t.Errorf("deferred %d recipients %d", s.Deferred, s.Recipients)
	}
	// The oldest Gmail-bound message arrived 27 s before now; the older
	// message to elsewhere.test does not count.
	if s.OldestAge != 27*time.Second || !s.OldestArrival.Equal(time.Unix(1772445573, 0)) {
		t.Errorf("oldest %s (arrival %s)", s.OldestAge, s.OldestArrival)
	}
	const reason = "Cannot start TLS: handshake failure"
	if s.TopReason != reason || len(s.Reasons) != 1 || len(s.Groups) != 1 {
		t.Fatalf("reasons %v groups %+v", s.Reasons, s.Groups)
	}
	g := s.Groups[0]
	if g.Reason != reason || g.Recipients != 4 || g.Messages != 3 || g.MoreIDs != 0 || len(g.IDs) != 3 {
		t.Fatalf("group %+v", g)
	}
	wantIDs := []string{"4D8E45103FE", "467615103FA", "5A1B2C3D4E5"}
	wantDomains := []string{"gmail.com", "googlemail.com", "workspace-customer.test"}
	for i, m := range g.IDs {
		if m.ID != wantIDs[i] || len(m.Domains) != 1 || m.Domains[0] != wantDomains[i] {
			t.Errorf("message %d: %+v", i, m)
		}
	}
	if d := s.Domains["workspace-customer.test"]; d.Why != BoundGoogleMX || d.Recipients != 2 {
		t.Errorf("domains %+v", s.Domains)
	}
	if _, ok := s.Domains["elsewhere.test"]; ok {
		t.Errorf("domains %+v", s.Domains)
	}
}

// A reason group keeps at most MaxIDsPerReason ids, the oldest, and counts
// the rest.
func TestSummarizeQueueBoundedIDs(t *testing.T) {
	var b strings.Builder
	for i := range MaxIDsPerReason + 5 {
		fmt.Fprintf(&b, `{"queue_name":"deferred","queue_id":"ABCDEF%04X","arrival_time":%d,"recipients":[{"address":"u@gmail.com","delay_reason":"r"}]}`+"\n",
			i, 1772445000-i)
	}
	s, err := ParsePostqueue(strings.NewReader(b.String()), queueNow)
	if err != nil {
		t.Fatal(err)
	}
	checkGroups(t, s)
	g := s.Groups[0]
	if len(g.IDs) != MaxIDsPerReason || g.MoreIDs != 5 || g.IDs[0].ID != fmt.Sprintf("ABCDEF%04X", MaxIDsPerReason+4) {
		t.Errorf("group %d ids, %d more, first %+v", len(g.IDs), g.MoreIDs, g.IDs[0])
	}
	if s.OldestAge != time.Duration(600+MaxIDsPerReason+4)*time.Second {
		t.Errorf("oldest %s", s.OldestAge)
	}
}
