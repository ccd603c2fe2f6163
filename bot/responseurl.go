package bot

import (
	"net"
	"net/url"
	"strings"
)

// DefaultResponseURLHosts are the hosts Slack's response_urls point to
// (https://hooks.slack.com/commands/…, /actions/…, /app/…).
var DefaultResponseURLHosts = []string{"hooks.slack.com"}

// responseURLAllowed reports whether u is a response_url the bot may post
// to: https (http only toward a loopback address, for tests) to one of
// hosts, without user information. A host written without a port
// matches the URL's host with no port or with 443; one written with a
// port matches only that port. Host names compare case-insensitively.
// Anything else, even in a payload Slack signed, is refused: the bot
// never posts its answers, or anything else, to an address a payload
// chose.
func responseURLAllowed(u string, hosts []string) bool {
	p, err := url.Parse(u)
	if err != nil || p.User != nil || p.Opaque != "" || p.Host == "" {
		return false
	}
	host, port := p.Hostname(), p.Port()
	switch p.Scheme {
	case "https":
	case "http":
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return false
		}
	default:
		return false
	}
	for _, h := range hosts {
		wantHost, wantPort := h, ""
		if hh, pp, err := net.SplitHostPort(h); err == nil {
			wantHost, wantPort = hh, pp
		}
		if !strings.EqualFold(strings.Trim(wantHost, "[]"), host) {
			continue
		}
		switch {
		case wantPort != "" && port == wantPort:
			return true
		case wantPort == "" && (port == "" || (p.Scheme == "https" && port == "443")):
			return true
		}
	}
	return false
}

// checkedResponseURL returns u when the bot may post to it, else "" (the
// answers then go through the Web API) after logging why.
func (b *Bot) checkedResponseURL(u, user, channel string) string {
	if u == "" || responseURLAllowed(u, b.cfg.ResponseURLHosts) {
		return u
	}
	host := ""
	if p, err := url.Parse(u); err == nil {
		host = p.Host
	}
	b.log.Warn("slack: ignored a response_url outside [slack] response_url_hosts; answering through the Web API instead",
		"host", host, "allowed", strings.Join(b.cfg.ResponseURLHosts, ","), "user", user, "channel", channel)
	return ""
}
