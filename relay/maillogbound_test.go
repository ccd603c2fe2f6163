package relay

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/probe"
)

// noMX answers no MX for any domain: the Workspace domain of the lab has
// no resolver answer, so only the mail log can make it Gmail-bound.
type noMX struct{}

func (noMX) LookupMX(context.Context, string) ([]*net.MX, error) {
	return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
}

// TestMailLogBoundRealPostfix: the real Postfix relay deferred mail to
// gmail.com, googlemail.com and a Workspace domain with no MX answer, all
// tried on the lab MX. Without the mail-log hook the agent's queue counts
// the two Gmail domains; with the hook wired (the lab MX as the target)
// its log shows the Workspace message's attempts going to that MX, and
// all three count, the Workspace one "mail_log"; a target elsewhere
// leaves it out.
func TestMailLogBoundRealPostfix(t *testing.T) {
	postfixlab.Require(t)
	r := postfixlab.StartRelay(t, postfixlab.RelayOptions{})
	env := map[string]string{"PATH": os.Getenv("PATH"), "MAIL_CONFIG": r.ConfigDir()}
	runner := &ExecRunner{Getenv: func(k string) string { return env[k] }}
	queue := func(targets []probe.Target, source string) Queue {
		t.Helper()
		cfg := ServerConfig{Base: probe.Config{Domain: "gmail.com"}, Commands: runner, Resolver: noMX{}, MailConfig: r.ConfigDir()}
		cfg.MailLogBound = mailLogBound(source, targets)
		srv := plainAgent(t, cfg)
		q, err := NewAgent("relay-2", srv.URL, testSecret, srv.Client(), 30*time.Second, nil).Queue(t.Context())
		if err != nil || !q.Available {
			t.Fatalf("queue: %v %+v", err, q)
		}
		return q
	}
	lab := []probe.Target{{Host: r.MX.Host(), Port: r.MX.Port()}}
	if q := queue(lab, ""); q.Deferred != 2 {
		t.Fatalf("without a mail log: %d deferred Gmail-bound, want 2 (gmail.com, googlemail.com): %+v", q.Deferred, q.Domains)
	}
	q := queue(lab, r.LogPath())
	if q.Deferred != 3 || q.Recipients != 3 {
		t.Fatalf("with the mail log: %d deferred (%d recipients), want all 3: %+v", q.Deferred, q.Recipients, q.Domains)
	}
	why := map[string]string{}
	for _, d := range q.Domains {
		why[d.Domain] = d.Why
	}
	if why["workspace-customer.test"] != "mail_log" {
		t.Errorf("domains %+v: want workspace-customer.test counted by the mail log", q.Domains)
	}
	if q := queue([]probe.Target{{Host: "192.0.2.25", Port: 25}}, r.LogPath()); q.Deferred != 2 {
		t.Errorf("target elsewhere: %d deferred, want 2", q.Deferred)
	}
}
