package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/storage"
)

// replicaChildEnv holds the arguments of a gmailtls child process run by
// the test binary (TestReplicaChild); only the replica tests set it, for
// their own children.
const replicaChildEnv = "GMAILTLS_TEST_REPLICA_ARGS"

// TestReplicaChild is not a test: it is gmailtls itself, run as a child
// process by the replica tests (a real process, so that it can be killed
// with SIGKILL).
func TestReplicaChild(t *testing.T) {
	args := os.Getenv(replicaChildEnv)
	if args == "" {
		t.Skip("only run as a child of the replica tests")
	}
	os.Args = append([]string{"gmailtls"}, strings.Split(args, "\x1f")...)
	os.Exit(run())
}

// replica is one `gmailtls serve` child process.
type replica struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

func startReplica(t *testing.T, name string, env []string, args ...string) *replica {
	t.Helper()
	r := &replica{name: name, logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(os.Args[0], "-test.run=^TestReplicaChild$", "-test.v=false")
	r.cmd.Env = append(append(os.Environ(), env...), replicaChildEnv+"="+strings.Join(args, "\x1f"))
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		logf.Close()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			t.Logf("log of %s:\n%s", r.name, b)
		}
	})
	return r
}

func (r *replica) log() string { b, _ := os.ReadFile(r.logPath); return string(b) }

var metricsAddr = regexp.MustCompile(`msg="serving /metrics, /healthz, /readyz" addr=(\S+)`)

// metricsURL waits for the replica's log line naming its /metrics address.
func (r *replica) metricsURL(t *testing.T) string {
	t.Helper()
	var u string
	waitUntil(t, r.name+"'s metrics endpoint", 20*time.Second, func() bool {
		if m := metricsAddr.FindStringSubmatch(r.log()); m != nil {
			u = "http://" + m[1]
			return true
		}
		select {
		case <-r.exited:
			t.Fatalf("%s exited: %v\n%s", r.name, r.err, r.log())
		default:
		}
		return false
	})
	return u
}

// role reads the replica's role from /readyz ("" when it does not answer
// 200).
func role(u string) (string, string) {
	resp, err := quickClient.Get(u + "/readyz")
	if err != nil {
		return "", ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", ""
	}
	var r, l string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "role: "); ok {
			r = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "leader: "); ok {
			l = v
		}
	}
	return r, l
}

var quickClient = &http.Client{Timeout: time.Second}

// replicaSetup is what the replica tests share: a Slack stand-in, a
// STARTTLS server for the relay, and a configuration file for serve,
// whose [storage] section is storageTOML.
type replicaSetup struct {
	slack   *slackfake.Server
	smtp    *smtptest.Server
	cfgPath string
	env     []string
}

func newReplicaSetup(t *testing.T, storageTOML string, env ...string) *replicaSetup {
	t.Helper()
	return newReplicaSetupWith(t, replicaOptions{}, storageTOML, env...)
}

// replicaOptions are what the replica tests may change in the setup.
type replicaOptions struct {
	// Slack configures the stand-in.
	Slack slackfake.Options
	// Mode is [slack] mode: "socket" (the default) or "http", which each
	// replica serves on a loopback port of its own.
	Mode string
	// Schedule is [probing] schedule (default "@every 2s").
	Schedule string
	// Extra is appended to the configuration file.
	Extra string
}

func newReplicaSetupWith(t *testing.T, o replicaOptions, storageTOML string, env ...string) *replicaSetup {
	t.Helper()
	if o.Mode == "" {
		o.Mode = "socket"
	}
	if o.Schedule == "" {
		o.Schedule = "@every 2s"
	}
	s := &replicaSetup{slack: slackfake.New(o.Slack)}
	t.Cleanup(s.slack.Close)
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	s.smtp = smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: "mx.test.example"})
	dir := t.TempDir()
	if err := ca.WritePEM(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[target]
mx = [%q]
servername = "mx.test.example"
ca_file = "ca.pem"
timeout = "5s"

%s

[[relay]]
name = "relay-1"

[slack]
mode = %q
api_url = %q
listen = "127.0.0.1:0"
response_url_hosts = [%q]

[probing]
schedule = %q

[alerts]
channel = "C0456EFGH"

[http]
listen = "127.0.0.1:0"
%s`, s.smtp.Addr(), storageTOML, o.Mode, s.slack.APIURL(), strings.TrimPrefix(s.slack.URL(), "http://"), o.Schedule, o.Extra)
	s.cfgPath = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = append([]string{
		"SLACK_BOT_TOKEN=" + slackfake.DefaultBotToken,
		"SLACK_APP_TOKEN=" + slackfake.DefaultAppToken,
		"SLACK_SIGNING_SECRET=test-signing-secret",
	}, env...)
	return s
}

func (s *replicaSetup) start(t *testing.T, name string) (*replica, string) {
	t.Helper()
	r := startReplica(t, name, s.env, "serve", "--config", s.cfgPath)
	return r, r.metricsURL(t)
}

// statusJSON runs `gmailtls status --json` on the replicas' configuration.
func (s *replicaSetup) statusJSON(t *testing.T) monitor.StatusModel {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaChild$", "-test.v=false")
	cmd.Env = append(append(os.Environ(), s.env...), replicaChildEnv+"="+strings.Join([]string{"status", "--json", "--config", s.cfgPath}, "\x1f"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gmailtls status --json: %v\n%s", err, out)
	}
	var m monitor.StatusModel
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("gmailtls status --json: %v\n%s", err, out)
	}
	return m
}

// posts are the chat.postMessage calls the stand-in answered with a ts.
func (s *replicaSetup) posts() []slackfake.Message { return s.slack.MessagesBy("chat.postMessage") }

// alerts are the top-level messages in the alerts channel.
func (s *replicaSetup) alerts() []slackfake.Message {
	var out []slackfake.Message
	for _, m := range s.posts() {
		if m.Channel == "C0456EFGH" && m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// TestReplicasFailOverSQLite is the two-replica failover on one SQLite
// file (SQLite's locking serialises the two processes' writes).
func TestReplicasFailOverSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about a minute")
	}
	s := newReplicaSetup(t, "[storage]\npath = \"replicas.db\"")
	open := func(ctx context.Context) (*storage.Store, error) {
		return storage.Open(ctx, filepath.Join(filepath.Dir(s.cfgPath), "replicas.db"), storage.Options{Mode: storage.ModeReadOnly})
	}
	testFailOver(t, s, open)
}

// testFailOver runs two serve replicas on one database against the Slack
// stand-in with the relay failing: the first leads and alerts; it is
// killed with SIGKILL in the middle of a probing round; the follower takes
// over within 15 s, the rounds go on and are stored, the relay recovers
// and the resolution is posted by the new leader; every alert and every
// other message is posted exactly once.
func testFailOver(t *testing.T, s *replicaSetup, open func(context.Context) (*storage.Store, error)) {
	ctx := t.Context()
	s.smtp.SetBehavior(smtptest.ResetAfterReady)
	a, aURL := s.start(t, "replica-a")
	waitUntil(t, "replica-a leads", 10*time.Second, func() bool { r, _ := role(aURL); return r == "leader" })
	_, aID := role(aURL)
	b, bURL := s.start(t, "replica-b")
	waitUntil(t, "replica-b answers as a follower", 10*time.Second, func() bool { r, l := role(bURL); return r == "follower" && l == aID })

	// The leader escalates and alerts; the follower posts nothing.
	waitUntil(t, "replica-a's alert", 40*time.Second, func() bool { return len(s.alerts()) >= 1 })
	alert := s.alerts()[0]
	if strings.Contains(b.log(), "outbox: delivered") || strings.Contains(b.log(), "became leader") {
		t.Fatalf("the follower delivered or led:\n%s", b.log())
	}

	// SIGKILL in the middle of a round: as soon as the next probe connects.
	conns := s.smtp.Connections()
	waitUntil(t, "the next round's probe", 10*time.Second, func() bool { return s.smtp.Connections() > conns })
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-a.exited
	waitUntil(t, "replica-b takes over", 20*time.Second, func() bool { r, _ := role(bURL); return r == "leader" })
	takeover := time.Since(killed)
	t.Logf("replica-b leads %s after replica-a's SIGKILL", takeover.Round(10*time.Millisecond))
	if takeover > 15*time.Second {
		t.Errorf("takeover took %s, want within 15 s", takeover)
	}
	if _, l := role(bURL); l == aID || l == "" {
		t.Errorf("replica-b names %q as the leader", l)
	}
	if !regexp.MustCompile(`msg="became leader" replica=\S+ lease_token=2`).MatchString(b.log()) {
		t.Errorf("replica-b does not log its term under token 2:\n%s", b.log())
	}
	// The CLI, where no elector runs, names the leader from the lease.
	_, bID := role(bURL)
	if st := s.statusJSON(t); st.Leader == nil || st.Leader.Replica != bID || st.Leader.Token != 2 ||
		!st.Leader.Expires.After(time.Now()) {
		t.Errorf("status --json names the leader %+v, want %s", st.Leader, bID)
	}

	// The schedule goes on under the new leader.
	after := time.Now()
	waitUntil(t, "rounds stored by the new leader", 20*time.Second, func() bool {
		st, err := open(ctx)
		if err != nil {
			return false
		}
		defer st.Close()
		sums, err := st.Summary(ctx, after, time.Now().Add(time.Minute))
		return err == nil && len(sums) == 1 && sums[0].Attempts >= 2
	})

	// The relay recovers: the new leader posts the resolution in the
	// alert's thread.
	s.smtp.SetBehavior(smtptest.Gmail)
	resolved := func() []slackfake.Message {
		var out []slackfake.Message
		for _, m := range s.posts() {
			if m.ThreadTS == alert.TS && strings.Contains(strings.ToLower(blocksText(m.Blocks)+m.Text), "resolved") {
				out = append(out, m)
			}
		}
		return out
	}
	waitUntil(t, "the resolution", 40*time.Second, func() bool { return len(resolved()) >= 1 })
	time.Sleep(3 * time.Second) // a double would come now

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.exited:
		if b.err != nil {
			t.Errorf("replica-b after SIGTERM: %v", b.err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("replica-b did not stop after SIGTERM")
	}

	// Exactly once: no message posted twice, one top-level alert per
	// incident (its Acknowledge button names the incident), one resolution.
	if n := len(resolved()); n != 1 {
		t.Errorf("the resolution was posted %d times", n)
	}
	seen := map[string]int{}
	for _, m := range s.posts() {
		seen[m.Channel+"\x00"+m.ThreadTS+"\x00"+m.Text+"\x00"+blocksText(m.Blocks)]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("posted %d times: %q", n, k)
		}
	}
	incidents := map[string]int{}
	for _, m := range s.alerts() {
		v, ok := buttonValue(m.Blocks, message.ActionAcknowledge)
		if !ok {
			continue
		}
		incidents[v]++
	}
	if len(incidents) == 0 {
		t.Error("no alert with an Acknowledge button")
	}
	for v, n := range incidents {
		if n != 1 {
			t.Errorf("incident %s alerted %d times", v, n)
		}
	}
	st, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pending, _, failed, err := st.OutboxStats(ctx, time.Now())
	if err != nil || pending != 0 || failed != 0 {
		t.Errorf("outbox after the run: %d pending, %d failed (%v)", pending, failed, err)
	}
	if _, held, err := st.CurrentLease(ctx, "serve"); err != nil || held {
		t.Errorf("the lease is held after replica-b's clean stop (%v)", err)
	}
	t.Logf("%d posts in all, %d alerts, takeover %s", len(s.posts()), len(s.alerts()), takeover.Round(10*time.Millisecond))
}

// TestReplicasFailOverPostgres is the two-replica failover on PostgreSQL
// (internal/pglab), as [storage] driver = "postgres" configures it.
func TestReplicasFailOverPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about a minute")
	}
	dsn := pglab.NewDatabase(t)
	s := newReplicaSetup(t, "[storage]\ndriver = \"postgres\"\ndsn_env = \"GMAILTLS_TEST_REPLICA_DSN\"", "GMAILTLS_TEST_REPLICA_DSN="+dsn)
	testFailOver(t, s, postgresOpener(dsn))
}

func postgresOpener(dsn string) func(context.Context) (*storage.Store, error) {
	return func(ctx context.Context) (*storage.Store, error) {
		return storage.Open(ctx, "", storage.Options{Driver: storage.EnginePostgres, DSN: dsn, Mode: storage.ModeReadOnly})
	}
}

// TestDeposedLeaderComesBackSQLite: the leader is frozen (SIGSTOP), the
// follower takes over and alerts; thawed (SIGCONT), the old leader turns
// follower and posts nothing: its log shows no delivery, and the alert
// went out once.
func TestDeposedLeaderComesBackSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about half a minute")
	}
	testComesBack(t, newReplicaSetup(t, "[storage]\npath = \"replicas.db\""))
}

// TestDeposedLeaderComesBackPostgres is TestDeposedLeaderComesBackSQLite
// on PostgreSQL.
func TestDeposedLeaderComesBackPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about half a minute")
	}
	dsn := pglab.NewDatabase(t)
	testComesBack(t, newReplicaSetup(t, "[storage]\ndriver = \"postgres\"\ndsn_env = \"GMAILTLS_TEST_REPLICA_DSN\"", "GMAILTLS_TEST_REPLICA_DSN="+dsn))
}

func testComesBack(t *testing.T, s *replicaSetup) {
	a, aURL := s.start(t, "replica-a")
	waitUntil(t, "replica-a leads", 10*time.Second, func() bool { r, _ := role(aURL); return r == "leader" })
	_, aID := role(aURL)
	_, bURL := s.start(t, "replica-b")
	waitUntil(t, "replica-b answers as a follower", 10*time.Second, func() bool { r, l := role(bURL); return r == "follower" && l == aID })

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitUntil(t, "replica-b takes over", 20*time.Second, func() bool { r, _ := role(bURL); return r == "leader" })
	t.Logf("replica-b leads %s after replica-a froze", time.Since(stopped).Round(10*time.Millisecond))
	_, bID := role(bURL)

	s.smtp.SetBehavior(smtptest.ResetAfterReady)
	waitUntil(t, "replica-b's alert", 40*time.Second, func() bool { return len(s.alerts()) >= 1 })
	posts := len(s.posts())

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	thawed := time.Now()
	waitUntil(t, "replica-a turns follower", 10*time.Second, func() bool { r, l := role(aURL); return r == "follower" && l == bID })
	t.Logf("replica-a answers as a follower %s after it was thawed", time.Since(thawed).Round(10*time.Millisecond))
	time.Sleep(4 * time.Second)
	if !strings.Contains(a.log(), "lost leadership") {
		t.Errorf("replica-a does not log that it lost leadership:\n%s", a.log())
	}
	if strings.Contains(a.log(), "outbox: delivered") {
		t.Errorf("the deposed replica-a delivered:\n%s", a.log())
	}
	if n := len(s.alerts()); n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
	for _, m := range s.posts()[posts:] {
		if m.ThreadTS == "" {
			t.Errorf("a top-level post after replica-a came back: %s %s", m.Text, blocksText(m.Blocks))
		}
	}
}
