package commands

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

// realAgent serves the agent protocol on loopback for a test, probing
// target with its MTA tools seeing mailConfig as MAIL_CONFIG.
func realAgent(t *testing.T, name string, base probe.Config, mailLog, mailConfig string) *relay.Agent {
	t.Helper()
	srv := httptest.NewServer(relay.NewServer(relay.ServerConfig{
		Base: base, Secrets: [][]byte{[]byte(agentSecret)}, MailLog: mailLog, MailConfig: mailConfig, Version: "test",
		Commands: &relay.ExecRunner{Getenv: func(k string) string {
			if k == "MAIL_CONFIG" {
				return mailConfig
			}
			return os.Getenv(k)
		}},
	}))
	t.Cleanup(srv.Close)
	return relay.NewAgent(name, srv.URL, []byte(agentSecret), srv.Client(), 30*time.Second, time.Now)
}

// TestCompareRealRelays: relay-2 is a real agent before the Postfix lab
// relay whose MX resets every TLS handshake; relay-1 a real agent whose
// target is a healthy loopback STARTTLS server, on a host without a
// Postfix configuration. The check of every relay carries a Compare
// button (and the check of relay-2 alone too, relay-1's latest run having
// passed); compare shows the differences first: the latest results, the
// TLS policy, the mail log's failures and the queue; --json carries both
// sides.
func TestCompareRealRelays(t *testing.T) {
	lab := postfixlab.StartRelay(t, postfixlab.RelayOptions{})
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	ok := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: "mx.test.example"})
	failTarget, err := probe.ParseTarget(lab.MX.Addr())
	if err != nil {
		t.Fatal(err)
	}
	okTarget, err := probe.ParseTarget(ok.Addr())
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, "relay-1", "relay-2")
	e.clock.Set(time.Now())
	e.relays = map[string]relay.Runner{
		"relay-2": realAgent(t, "relay-2", probe.Config{Relay: "relay-2", MX: []probe.Target{failTarget}, Timeout: 5 * time.Second},
			lab.LogPath(), lab.ConfigDir()),
		"relay-1": realAgent(t, "relay-1", probe.Config{Relay: "relay-1", MX: []probe.Target{okTarget}, Timeout: 5 * time.Second,
			ServerName: "mx.test.example", ExtraRoots: ca.Pool}, "", "/nonexistent-gmailtls-postfix"),
	}
	e.restart()
	ctx := context.Background()

	all := e.h.Do(ctx, slash("check all"))
	btn, found := findButton(all, message.ActionCompare)
	if !found || btn.Label != "Compare with relay-1" {
		t.Fatalf("check all: no Compare with relay-1 button: %+v\n%s", all.Buttons, renderString(t, all))
	}
	one := e.h.Do(ctx, slash("check relay-2"))
	if b, found := findButton(one, message.ActionCompare); !found || b.Value != btn.Value {
		t.Errorf("check relay-2: Compare button %+v, want %+v", b, btn)
	}
	if _, found := findButton(e.h.Do(ctx, slash("check relay-1")), message.ActionCompare); found {
		t.Errorf("check relay-1 (passing) carries a Compare button")
	}

	resp := e.h.Do(ctx, message.Request{Action: message.ActionCompare, Value: btn.Value, UserID: "UALICE", Source: message.SourceSlash})
	if resp.Verdict != message.VerdictInfo || !strings.HasPrefix(resp.Title, "relay-2 beside relay-1") {
		t.Fatalf("Compare button:\n%s", renderString(t, resp))
	}
	checkGolden(t, "compare.txt", stableCompare(flatten(resp), lab.MX.Port(), ok.Port()))
	if len(resp.Sections) < 2 || resp.Sections[0].Heading != "Differs" || resp.Sections[1].Heading != "Same" {
		t.Errorf("sections: differences first, then the same:\n%s", renderString(t, resp))
	}

	cmd, err := Parse("compare relay-2 relay-1")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := e.h.Exec(ctx, message.Request{Source: message.SourceCLI, UserID: "cli"}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(reply.Data)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Relays  []string `json:"relays"`
		Differs []struct {
			Name   string   `json:"name"`
			Values []string `json:"values"`
		} `json:"differs"`
		Same  []json.RawMessage `json:"same"`
		Sides []struct {
			Relay  string          `json:"relay"`
			Host   json.RawMessage `json:"host"`
			Policy *struct {
				Available     bool   `json:"available"`
				SecurityLevel string `json:"security_level"`
			} `json:"policy"`
			Log *struct {
				Available bool              `json:"available"`
				Queue     []json.RawMessage `json:"queue"`
			} `json:"log"`
			Latest []struct {
				IP      string `json:"ip"`
				OK      bool   `json:"ok"`
				Failure string `json:"failure"`
			} `json:"latest"`
		} `json:"sides"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Relays) != 2 || got.Relays[0] != "relay-2" || len(got.Sides) != 2 || len(got.Differs) == 0 || len(got.Same) == 0 {
		t.Fatalf("--json = %s", data)
	}
	s2, s1 := got.Sides[0], got.Sides[1]
	if s2.Policy == nil || s2.Policy.SecurityLevel != "encrypt" || s2.Log == nil || !s2.Log.Available || len(s2.Log.Queue) != len(postfixlab.DefaultRelayDomains) {
		t.Errorf("relay-2 side = %+v", s2)
	}
	if len(s2.Latest) != 1 || s2.Latest[0].OK || s2.Latest[0].Failure != string(probe.FailTLSReset) || len(s1.Latest) != 1 || !s1.Latest[0].OK {
		t.Errorf("latest results: relay-2 %+v, relay-1 %+v", s2.Latest, s1.Latest)
	}
}

// findButton is the response's button for action.
func findButton(r message.Response, action string) (message.Button, bool) {
	for _, b := range r.Buttons {
		if b.Action == action {
			return b, true
		}
	}
	return message.Button{}, false
}

// stableCompare takes out of a compare text what differs from one run or
// host to the next: ports, the host's addresses and versions.
func stableCompare(text string, ports ...int) string {
	for _, p := range ports {
		text = strings.ReplaceAll(text, ":"+strconv.Itoa(p), ":<PORT>")
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^(Outbound IPs|TLS library|MTA): .*$`),
		regexp.MustCompile(`(?m)^(relay-[12]: (host info|TLS policy|mail log) not available): .*$`),
	} {
		text = re.ReplaceAllString(text, "$1: <HOST>")
	}
	return text
}
