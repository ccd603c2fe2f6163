package postfixlab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// The Postfix user and group the Debian package creates.
const (
	mailOwner   = "postfix"
	setgidGroup = "postdrop"
)

// Defaults of Options.
const (
	// DefaultSlowGreeting is how long SlowGreeting waits before greeting.
	DefaultSlowGreeting = 5 * time.Second
	// startTimeout bounds how long Launch waits for master to be ready.
	startTimeout = 20 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second
)

// Listener is one smtpd of an instance.
type Listener struct {
	// Kind is how the listener is configured.
	Kind Kind
	// IPv6 listens on [::1] instead of 127.0.0.1.
	IPv6 bool
	// Addr is the listen address ("127.0.0.1:PORT" or "[::1]:PORT"), set
	// by Launch.
	Addr string
}

// Options configures an instance. The zero value runs one OK listener on
// 127.0.0.1 with a fresh CA.
type Options struct {
	// Listeners are the smtpd listeners (default: one OK on 127.0.0.1).
	Listeners []Listener
	// CA issues the certificates of the TLS kinds (default: a fresh
	// smtptest CA). Its certificate is written to Instance.CAFile.
	CA *smtptest.CA
	// Hostname is myhostname and the name in the certificates (default
	// "mx.test.example", smtptest's).
	Hostname string
	// SlowGreeting is how long SlowGreeting listeners wait before the
	// greeting (default 5 s; whole seconds, rounded up).
	SlowGreeting time.Duration
	// Main are extra main.cf lines ("name = value"), after the lab's own.
	Main []string
	// Dir is where the instance's temporary directory is made (default
	// os.TempDir()). Its path must not contain white space or commas.
	Dir string
	// Keep leaves the temporary directory in place after Stop.
	Keep bool

	// plainNames keeps Postfix's own syslog names (the relay).
	plainNames bool
	// files are more files for the configuration directory (the relay's
	// transport table).
	files []confFile
	// mainFor adds main.cf lines that name files of the layout.
	mainFor func(layout) []string
}

// confFile is one file of the configuration directory.
type confFile struct{ name, text string }

// main are the extra main.cf lines.
func (o Options) main(l layout) []string {
	lines := append([]string(nil), o.Main...)
	if o.mainFor != nil {
		lines = append(lines, o.mainFor(l)...)
	}
	return lines
}

// writeConfig writes a configuration file dated an hour ago. Postfix
// rereads a table or main.cf, 300 ms apart, until its modification time
// is in the past: a file written this second delays master's start-up by
// two seconds.
func writeConfig(path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("postfixlab: write %s: %w", path, err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, past, past); err != nil {
		return fmt.Errorf("postfixlab: date %s: %w", path, err)
	}
	return nil
}

// Instance is one running Postfix master with its own configuration,
// queue and log in a temporary directory.
type Instance struct {
	l          layout
	ca         *smtptest.CA
	hostname   string
	listeners  []Listener
	version    string
	commandDir string
	keep       bool

	cmd    *exec.Cmd
	out    string        // the file of master's stdout and stderr
	exited chan struct{} // closed when master has exited
	err    error         // master's exit, set before exited closes

	stopOnce sync.Once
	stopErr  error
}

// Check reports why the Postfix test bed cannot run on this machine, or
// nil when it can: Linux, root, the postfix package (3.4 or later), the
// postfix user and the postdrop group.
func Check() error { return checkOnce() }

var checkOnce = sync.OnceValue(func() error {
	_, err := findPostfix()
	return err
})

// postfixBin are the locations and version of the installed Postfix.
type postfixBin struct {
	postconf   string
	daemonDir  string
	commandDir string
	version    string
	uid, gid   int
}

var findPostfix = sync.OnceValues(func() (postfixBin, error) {
	var pb postfixBin
	if supported != nil {
		return pb, supported
	}
	if os.Geteuid() != 0 {
		return pb, errors.New("postfixlab: Postfix's master must run as root (it drops to the postfix user itself); run the tests as root")
	}
	pc, err := exec.LookPath("postconf")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/postconf"); serr != nil {
			return pb, errors.New("postfixlab: Postfix is not installed (no postconf): apt-get install --no-install-recommends postfix, " +
				`with "No configuration" and no running service, as .ci/run does`)
		}
		pc = "/usr/sbin/postconf"
	}
	pb.postconf = pc
	out, err := exec.Command(pc, "-d", "-h", "mail_version", "daemon_directory", "command_directory").Output()
	if err != nil {
		return pb, fmt.Errorf("postfixlab: %s -d: %w", pc, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return pb, fmt.Errorf("postfixlab: unexpected output of postconf -d: %q", out)
	}
	pb.version, pb.daemonDir, pb.commandDir = f[0], f[1], f[2]
	if !versionAtLeast(pb.version, 3, 4) {
		return pb, fmt.Errorf("postfixlab: Postfix %s is too old: the lab needs 3.4 or later (maillog_file)", pb.version)
	}
	if _, err := os.Stat(filepath.Join(pb.daemonDir, "master")); err != nil {
		return pb, fmt.Errorf("postfixlab: Postfix's master is missing: %w", err)
	}
	u, err := user.Lookup(mailOwner)
	if err != nil {
		return pb, fmt.Errorf("postfixlab: user %s (mail_owner): %w", mailOwner, err)
	}
	g, err := user.LookupGroup(setgidGroup)
	if err != nil {
		return pb, fmt.Errorf("postfixlab: group %s (setgid_group): %w", setgidGroup, err)
	}
	pb.uid, _ = strconv.Atoi(u.Uid)
	pb.gid, _ = strconv.Atoi(g.Gid)
	return pb, nil
})

// versionAtLeast reports whether the dotted version v is maj.min or later.
func versionAtLeast(v string, maj, min int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	a, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return a > maj || a == maj && b >= min
}

// Require skips tb when the test bed cannot run here, or fails it under
// CI=true, where a missing Postfix is a broken CI and not a reason to skip.
// Start and StartRelay call it.
func Require(tb testing.TB) {
	tb.Helper()
	err := Check()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("the Postfix test bed must run under CI: %v", err)
	}
	tb.Skipf("skipping the Postfix test bed: %v", err)
}

// Start launches an instance for a test or benchmark and stops it at
// cleanup; the log is printed when the test failed. It skips tb when
// Postfix cannot run here (fails it under CI=true), and fails tb when the
// instance does not start.
func Start(tb testing.TB, opts Options) *Instance {
	tb.Helper()
	Require(tb)
	in, err := Launch(opts)
	if err != nil {
		tb.Fatalf("start the Postfix lab: %v", err)
	}
	tb.Cleanup(func() { in.cleanup(tb) })
	return in
}

// cleanup stops in for a test, printing the log first when tb failed.
func (in *Instance) cleanup(tb testing.TB) {
	if tb.Failed() {
		if lines, err := in.Log(); err == nil {
			tb.Logf("Postfix lab log (%s):\n%s", in.l.maillog, strings.Join(lines, "\n"))
		}
	}
	if err := in.Stop(); err != nil {
		tb.Errorf("stop the Postfix lab: %v", err)
	}
}

// IPv6Loopback reports whether this machine can listen on ::1, which an
// IPv6 listener needs.
func IPv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// Launch starts an instance and returns once its listeners accept
// connections. Stop ends it.
func Launch(opts Options) (*Instance, error) {
	pb, err := findPostfix()
	if err != nil {
		return nil, err
	}
	if len(opts.Listeners) == 0 {
		opts.Listeners = []Listener{{Kind: OK}}
	}
	for _, ln := range opts.Listeners {
		if ln.Kind.Description() == "" {
			return nil, fmt.Errorf("postfixlab: unknown kind %q", ln.Kind)
		}
	}
	if opts.Hostname == "" {
		opts.Hostname = smtptest.DefaultHostname
	}
	if opts.SlowGreeting <= 0 {
		opts.SlowGreeting = DefaultSlowGreeting
	}
	if opts.CA == nil {
		if opts.CA, err = smtptest.NewCA(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(opts.Dir, "postfixlab-")
	if err != nil {
		return nil, fmt.Errorf("postfixlab: make the instance directory: %w", err)
	}
	in, err := launch(pb, dir, opts)
	if err != nil {
		if !opts.Keep {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	return in, nil
}

func launch(pb postfixBin, dir string, opts Options) (*Instance, error) {
	if strings.ContainsAny(dir, " \t\n,") {
		return nil, fmt.Errorf("postfixlab: the instance directory %q contains white space or a comma, which main.cf lists cannot hold", dir)
	}
	// The postfix user needs to reach nothing here (daemons chdir to the
	// queue as root), but a readable tree makes the lab easy to inspect.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("postfixlab: %w", err)
	}
	l := newLayout(dir)
	if err := makeTree(l, pb.uid, pb.gid); err != nil {
		return nil, err
	}
	certs, err := writeCerts(l.tls, opts.CA, opts.Hostname, l.caFile)
	if err != nil {
		return nil, err
	}
	if err := writeConfig(l.greet421, greet421Table); err != nil {
		return nil, err
	}

	// Reserve a port per listener until master has bound them all.
	listeners := make([]Listener, len(opts.Listeners))
	ipv6 := false
	var held []net.Listener
	defer func() {
		for _, h := range held {
			_ = h.Close()
		}
	}()
	for i, ln := range opts.Listeners {
		ip := "127.0.0.1"
		if ln.IPv6 {
			ip, ipv6 = "::1", true
		}
		h, err := reservePort(ip)
		if err != nil {
			return nil, fmt.Errorf("postfixlab: reserve a port on %s: %w", ip, err)
		}
		held = append(held, h)
		ln.Addr = h.Addr().String()
		listeners[i] = ln
	}

	for _, f := range opts.files {
		if err := writeConfig(filepath.Join(l.conf, f.name), f.text); err != nil {
			return nil, err
		}
	}
	if err := writeConfig(filepath.Join(l.conf, "main.cf"), mainCF(l, opts.Hostname, ipv6, opts.main(l))); err != nil {
		return nil, err
	}
	if err := writeConfig(filepath.Join(l.conf, "master.cf"), masterCF(l, listeners, certs, opts.SlowGreeting, opts.plainNames)); err != nil {
		return nil, err
	}

	in := &Instance{
		l: l, ca: opts.CA, hostname: opts.Hostname, listeners: listeners,
		version: pb.version, commandDir: pb.commandDir, keep: opts.Keep,
		out: filepath.Join(l.dir, "master.out"), exited: make(chan struct{}),
	}
	cmd := exec.Command(filepath.Join(pb.daemonDir, "master"), "-c", l.conf, "-s")
	cmd.Dir = l.dir
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+l.conf)
	// A file, not a pipe: master and its children inherit it (a pipe
	// delayed master's start-up by seconds, or forever).
	out, err := os.Create(in.out)
	if err != nil {
		return nil, fmt.Errorf("postfixlab: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	dieWithParent(cmd)
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, fmt.Errorf("postfixlab: start master: %w", err)
	}
	in.cmd = cmd
	go func() {
		in.err = cmd.Wait()
		close(in.exited)
	}()
	if err := in.waitReady(); err != nil {
		_ = in.Stop()
		return nil, err
	}
	return in, nil
}

// waitReady waits for master's "daemon started" line: its listeners are
// bound by then.
func (in *Instance) waitReady() error {
	deadline := time.After(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(in.l.maillog); err == nil && bytes.Contains(b, []byte("postfix/master[")) &&
			bytes.Contains(b, []byte("daemon started")) {
			return nil
		}
		select {
		case <-in.exited:
			return fmt.Errorf("postfixlab: master exited at start-up (%v)%s", in.err, in.diagnose())
		case <-deadline:
			return fmt.Errorf("postfixlab: master did not log \"daemon started\" within %s%s", startTimeout, in.diagnose())
		case <-tick.C:
		}
	}
}

// diagnose collects what explains a failed start: master's own output,
// postconf's checks of both files, and the log.
func (in *Instance) diagnose() string {
	var b strings.Builder
	if out, err := os.ReadFile(in.out); err == nil && len(bytes.TrimSpace(out)) > 0 {
		b.WriteString("\nmaster: " + string(bytes.TrimSpace(out[:min(len(out), 4096)])))
	}
	for _, flag := range []string{"-n", "-M"} {
		out, err := exec.Command(filepath.Join(in.commandDir, "postconf"), "-c", in.l.conf, flag).CombinedOutput()
		for line := range strings.SplitSeq(string(out), "\n") {
			if strings.Contains(line, "warning") || strings.Contains(line, "fatal") {
				b.WriteString("\n" + line)
			}
		}
		if err != nil {
			fmt.Fprintf(&b, "\npostconf %s: %v", flag, err)
		}
	}
	if lines, err := in.Log(); err == nil && len(lines) > 0 {
		b.WriteString("\nlog:\n" + strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	b.WriteString("\n(instance directory " + in.l.dir + "; try: postfix -c " + in.l.conf + " check)")
	return b.String()
}

// Stop ends master and its children and removes the temporary directory
// (unless Options.Keep). It returns an error when master had exited
// before Stop or would not stop. Calling it again does nothing.
func (in *Instance) Stop() error {
	in.stopOnce.Do(func() {
		select {
		case <-in.exited:
			in.stopErr = fmt.Errorf("postfixlab: master had exited before Stop: %v%s", in.err, in.diagnose())
		default:
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-in.exited:
			case <-time.After(stopTimeout):
				_ = killGroup(in.cmd.Process.Pid, syscall.SIGKILL)
				<-in.exited
				in.stopErr = fmt.Errorf("postfixlab: master did not stop within %s of SIGTERM; killed its process group", stopTimeout)
			}
		}
		if !in.keep {
			if err := os.RemoveAll(in.l.dir); err != nil && in.stopErr == nil {
				in.stopErr = fmt.Errorf("postfixlab: remove %s: %w", in.l.dir, err)
			}
		}
	})
	return in.stopErr
}

// Dir is the instance's temporary directory.
func (in *Instance) Dir() string { return in.l.dir }

// ConfigDir is the instance's configuration directory (main.cf,
// master.cf): MAIL_CONFIG, or the argument of -c for postconf, postqueue,
// postsuper and postfix.
func (in *Instance) ConfigDir() string { return in.l.conf }

// QueueDir is the instance's queue_directory.
func (in *Instance) QueueDir() string { return in.l.queue }

// LogPath is the instance's maillog_file: every line any of its Postfix
// processes logged.
func (in *Instance) LogPath() string { return in.l.maillog }

// CAFile is the PEM file of the lab CA, which issued the certificates of
// every TLS kind except UntrustedCA (for --ca-file and openssl -CAfile).
func (in *Instance) CAFile() string { return in.l.caFile }

// CA is the lab CA.
func (in *Instance) CA() *smtptest.CA { return in.ca }

// Hostname is the instance's myhostname and certificate name (for
// --servername).
func (in *Instance) Hostname() string { return in.hostname }

// Version is Postfix's mail_version, e.g. "3.7.11".
func (in *Instance) Version() string { return in.version }

// Listeners returns the instance's listeners with their addresses.
func (in *Instance) Listeners() []Listener { return append([]Listener(nil), in.listeners...) }

// Addr is the address of the first listener of kind k, IPv4 before IPv6,
// or "" when there is none.
func (in *Instance) Addr(k Kind) string {
	for _, v6 := range []bool{false, true} {
		for _, ln := range in.listeners {
			if ln.Kind == k && ln.IPv6 == v6 {
				return ln.Addr
			}
		}
	}
	return ""
}

// Log returns the lines of the instance's log so far.
func (in *Instance) Log() ([]string, error) {
	b, err := os.ReadFile(in.l.maillog)
	if err != nil {
		return nil, fmt.Errorf("postfixlab: read the log: %w", err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

// WaitLog waits until at least n lines of the log contain substr and
// returns those lines, or returns an error with the lines so far when ctx
// ends first.
func (in *Instance) WaitLog(ctx context.Context, substr string, n int) ([]string, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		lines, err := in.Log()
		if err != nil {
			return nil, err
		}
		var hits []string
		for _, l := range lines {
			if strings.Contains(l, substr) {
				hits = append(hits, l)
			}
		}
		if len(hits) >= n {
			return hits, nil
		}
		select {
		case <-ctx.Done():
			return hits, fmt.Errorf("postfixlab: %d of %d log lines with %q before %w", len(hits), n, substr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Postconf runs postconf -c ConfigDir with args and returns its output.
func (in *Instance) Postconf(ctx context.Context, args ...string) (string, error) {
	return in.command(ctx, "postconf", args...)
}

// command runs a Postfix command of command_directory on this instance.
func (in *Instance) command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(in.commandDir, name), append([]string{"-c", in.l.conf}, args...)...)
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+in.l.conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("postfixlab: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// QueueEntry is one message of postqueue -j's output.
type QueueEntry struct {
	QueueName  string           `json:"queue_name"`
	QueueID    string           `json:"queue_id"`
	ArrivalTS  int64            `json:"arrival_time"`
	Sender     string           `json:"sender"`
	Recipients []QueueRecipient `json:"recipients"`
}

// QueueRecipient is one recipient of a queued message.
type QueueRecipient struct {
	Address     string `json:"address"`
	DelayReason string `json:"delay_reason"`
}

// Queue lists the instance's queue with postqueue -c ConfigDir -j.
func (in *Instance) Queue(ctx context.Context) ([]QueueEntry, error) {
	out, err := in.command(ctx, "postqueue", "-j")
	if err != nil {
		return nil, err
	}
	var entries []QueueEntry
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var e QueueEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("postfixlab: parse postqueue -j: %w", err)
		}
		entries = append(entries, e)
	}
	return entries, sc.Err()
}
