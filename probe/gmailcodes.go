package probe

import (
	"strconv"
	"strings"
)

// gmailReply is one row of the table of Google's documented SMTP replies:
// a reply code (0: any 4xx or 5xx), an enhanced status code (exact,
// "4.7.28", or a family, "4.7."), an optional phrase of the reply text
// (lower case) and what it means for a mail operator.
type gmailReply struct {
	code     int
	enhanced string
	phrase   string
	meaning  string
}

// gmailReplies is the table, first match wins: the specific rows (a code
// with a phrase) before the code alone, and the families last. It holds
// only replies Google documents for Gmail ("Gmail SMTP errors and codes",
// the sender guidelines); an unknown one gets the meaning of its family.
func gmailReplies() []gmailReply {
	return []gmailReply{
		{421, "4.7.0", "ip not in whitelist", "the recipient's Google Workspace domain only takes mail from the IP addresses it lists (an inbound gateway), and this relay's IP is not one of them: the recipient domain's policy, which its administrator changes"},
		{421, "4.7.0", "tls required", "the recipient domain requires mail to it over TLS: a policy of that domain; the MTA must deliver with STARTTLS"},
		{421, "4.7.0", "unusual rate of unsolicited mail", "Google has seen an unusual rate of unsolicited mail from this IP and limits it: IP reputation and sending rate; slow down, look for spam or a compromised account, and watch Postmaster Tools"},
		{421, "4.7.0", "low reputation", "Google judges the reputation of the sending IP or domain very low: reputation; see Postmaster Tools and Google's sender guidelines"},
		{421, "4.7.0", "temporary system problem", "a temporary problem on Google's side: nothing to fix on this relay; the retry queue delivers later"},
		{421, "4.7.0", "try again later", "Google is turning away sessions from this IP for now, which Google documents as a limit on connections at the HELO stage: sending or connection rate, or reputation; fewer parallel connections, and the retry queue delivers later"},
		{421, "4.7.0", "", "Google turns the session away for now (4.7.0): reputation, rate or policy; the reply text says which"},
		{454, "4.7.0", "cannot authenticate", "SMTP AUTH failed for a temporary problem on Google's side: retry later"},
		{0, "4.3.0", "", "a temporary problem of Google's mail system: nothing to fix on this relay; the retry queue delivers later"},
		{0, "4.4.5", "", "Google's server is busy: retry later; nothing to fix on this relay"},
		{0, "4.7.23", "", "the reverse DNS (PTR) of this relay's IP does not match its forward DNS: fix the PTR record and the A/AAAA record it names"},
		{0, "5.7.25", "", "this relay's IP has no reverse DNS (PTR) record, or its forward DNS does not point back to the IP: publish matching PTR and A/AAAA records"},
		{0, "4.7.26", "", "Gmail limits unauthenticated mail: SPF or DKIM must pass for the sending domain"},
		{0, "5.7.26", "", "Gmail blocks unauthenticated mail: SPF or DKIM must pass, and the sending domain's DMARC policy rejects what fails"},
		{0, "4.7.27", "", "SPF did not pass for the sending domain: publish or fix its SPF record for this relay's IP"},
		{0, "5.7.27", "", "SPF did not pass for the sending domain and Gmail blocks the message: publish or fix its SPF record for this relay's IP"},
		{0, "4.7.28", "", "Google rate-limits this IP for an unusual rate of unsolicited mail: reputation and sending rate; follow the bulk sender guidelines and watch Postmaster Tools"},
		{0, "5.7.28", "", "Google blocks this IP for an unusual rate of unsolicited mail: reputation; follow the bulk sender guidelines and watch Postmaster Tools"},
		{0, "4.7.29", "", "Gmail limits mail that did not arrive over TLS (a sender guideline): make the MTA deliver to Gmail with STARTTLS"},
		{0, "5.7.29", "", "Gmail blocks mail that did not arrive over TLS (a sender guideline): make the MTA deliver to Gmail with STARTTLS"},
		{0, "4.7.30", "", "DKIM did not pass for the sending domain: sign with a DKIM key published in its DNS"},
		{0, "5.7.30", "", "DKIM did not pass for the sending domain and Gmail blocks the message: sign with a DKIM key published in its DNS"},
		{0, "4.7.32", "", "the From: domain is not aligned with the domain SPF or DKIM authenticated (DMARC alignment): align them"},
		{0, "5.7.32", "", "the From: domain is not aligned with the domain SPF or DKIM authenticated (DMARC alignment), and Gmail blocks the message: align them"},
		{550, "5.7.1", "unsolicited mail", "Google blocks this IP for unsolicited mail: reputation; see Postmaster Tools and Google's sender guidelines"},
		{550, "5.7.1", "not authorized to send email directly", "Google does not take mail directly from this IP (such as an address in a dynamic range): send through the provider's relay"},
		{0, "5.7.1", "", "Google refuses this IP or message by policy (5.7.1): reputation or policy; the reply text says which"},
		{0, "4.7.", "", "a temporary policy refusal by Google: reputation, rate or policy; the reply text says which"},
		{0, "5.7.", "", "a permanent policy refusal by Google: reputation or policy; resending will not help until it is fixed"},
		{0, "4.3.", "", "a temporary condition of Google's mail system: the retry queue delivers later"},
		{0, "4.4.", "", "a temporary condition of Google's mail system: the retry queue delivers later"},
	}
}

// ExplainGmailReply explains a 4xx or 5xx reply from a Google MX from the
// codes Google documents: its reply code, its RFC 3463 enhanced status
// code (enhanced; when empty or not valid for the reply code, the one
// that starts text) and its text. The explanation names the code, says
// what it means and that this is an SMTP policy answer, not the
// SSL_connect problem. ok is false for a reply the table has nothing on.
func ExplainGmailReply(code int, enhanced, text string) (explanation string, ok bool) {
	if code < 400 || code > 599 {
		return "", false
	}
	if c, _, _, valid := parseEnhanced(enhanced); !valid || c != code/100 {
		enhanced = ""
	}
	if enhanced == "" {
		word, _, _ := strings.Cut(strings.TrimSpace(text), " ")
		if c, _, _, valid := parseEnhanced(word); valid && c == code/100 {
			enhanced = word
		}
	}
	if enhanced == "" {
		return "", false
	}
	lower := strings.ToLower(text)
	for _, r := range gmailReplies() {
		if r.code != 0 && r.code != code {
			continue
		}
		if strings.HasSuffix(r.enhanced, ".") {
			if !strings.HasPrefix(enhanced, r.enhanced) {
				continue
			}
		} else if r.enhanced != enhanced {
			continue
		}
		if r.phrase != "" && !strings.Contains(lower, r.phrase) {
			continue
		}
		kind := "an SMTP answer"
		if enhanced[1:3] == ".7" {
			kind = "an SMTP policy answer"
		}
		return "Google's reply " + strconv.Itoa(code) + " " + enhanced + ": " + r.meaning +
			". This is " + kind + " from Google, not the SSL_connect problem", true
	}
	return "", false
}

// parseEnhanced parses an RFC 3463 enhanced status code, class "." subject
// "." detail, where class is 2, 4 or 5 and subject and detail have one to
// three digits without a leading zero (or are 0).
func parseEnhanced(s string) (class, subject, detail int, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 {
		return 0, 0, 0, false
	}
	switch parts[0] {
	case "2", "4", "5":
		class = int(parts[0][0] - '0')
	default:
		return 0, 0, 0, false
	}
	num := func(p string) (int, bool) {
		if len(p) == 0 || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return 0, false
		}
		n := 0
		for i := range len(p) {
			if p[i] < '0' || p[i] > '9' {
				return 0, false
			}
			n = n*10 + int(p[i]-'0')
		}
		return n, true
	}
	var okS, okD bool
	subject, okS = num(parts[1])
	detail, okD = num(parts[2])
	if !okS || !okD {
		return 0, 0, 0, false
	}
	return class, subject, detail, true
}

// fromGoogle reports whether a session was with a Google MX: the MX host
// name ends in google.com, or a line the server sent names mx.google.com
// or carries Google's "gsmtp" mark.
func fromGoogle(mx string, transcript []string) bool {
	host := strings.TrimSuffix(strings.ToLower(mx), ".")
	if host == "google.com" || strings.HasSuffix(host, ".google.com") {
		return true
	}
	for _, l := range transcript {
		line, ok := strings.CutPrefix(l, FromServer)
		if !ok {
			continue
		}
		line = strings.ToLower(line)
		if strings.Contains(line, "mx.google.com") || strings.HasSuffix(line, " gsmtp") {
			return true
		}
	}
	return false
}
