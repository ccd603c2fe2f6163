package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// CommandRunner runs the relay's own tools (openssl, posttls-finger,
// postqueue, postconf, postmap, exim). It exists so that tests can inject recorded
// outputs and so that the agent never builds a shell command line.
type CommandRunner interface {
	// Run runs name with args and stdin closed, and returns what it wrote
	// to stdout and stderr, interleaved, capped in size. A non-zero exit
	// status is an error that still comes with the output. A program that
	// is not installed yields an error wrapping exec.ErrNotFound.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// DefaultMaxOutput caps what ExecRunner keeps of a command's output.
const DefaultMaxOutput = 1 << 20

// tools lists the programs the relay may run, for logging at start: the
// MTA-stack tools and the ones Info, Queue and Policy ask. Nothing else is ever
// started.
var tools = []string{"openssl", "posttls-finger", "postconf", "postmap", "postqueue", "exim"}

// childEnvKeys are the only variables a tool inherits from the process
// environment: what the tools need to find their programs, speak the
// locale, read the time zone, and select the Postfix instance
// (MAIL_CONFIG) and OpenSSL's trust store and configuration. Slack tokens,
// the agents' shared secrets and everything else stay out of the tools'
// reach.
var childEnvKeys = []string{
	"PATH", "LANG", "LC_ALL", "TZ",
	"MAIL_CONFIG",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "OPENSSL_CONF",
}

// defaultPath is the child's PATH when the process has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ChildEnv is the whole environment a tool is started with: the variables
// of childEnvKeys that getenv has a value for, and a PATH in any case.
func ChildEnv(getenv func(string) string) []string {
	env := make([]string, 0, len(childEnvKeys))
	for _, k := range childEnvKeys {
		v := getenv(k)
		if k == "PATH" && v == "" {
			v = defaultPath
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// ExecRunner runs programs with os/exec, never through a shell, with the
// minimal environment of ChildEnv: a tool never sees the process's secrets.
// Each program name is resolved once, through PATH, to an absolute path
// that is logged and then kept, so that a PATH entry that changes later
// cannot swap the program. The context's deadline kills the program. Use
// a pointer; the zero value is ready to use.
type ExecRunner struct {
	// MaxOutput caps the output kept (default DefaultMaxOutput); the rest
	// is discarded.
	MaxOutput int
	// Getenv reads the process environment that ChildEnv filters (default
	// os.Getenv).
	Getenv func(string) string
	// Logger receives the path each tool resolved to (default: discarded).
	Logger *slog.Logger

	mu    sync.Mutex
	paths map[string]string
}

// Resolve returns the absolute path name runs from, looking it up through
// PATH the first time and logging the result; later calls answer from the
// first lookup. A program that is not installed yields an error wrapping
// exec.ErrNotFound, and is looked up again next time (it may be installed
// later).
func (r *ExecRunner) Resolve(name string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.paths[name]; ok {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err == nil {
		p, err = filepath.Abs(p)
	}
	if err != nil {
		r.logger().Debug("relay: tool not installed", "tool", name, "error", err.Error())
		return "", fmt.Errorf("%s is not installed: %w", name, err)
	}
	if r.paths == nil {
		r.paths = make(map[string]string)
	}
	r.paths[name] = p
	r.logger().Info("relay: tool found", "tool", name, "path", p)
	return p, nil
}

func (r *ExecRunner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run implements CommandRunner.
func (r *ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := r.Resolve(name)
	if err != nil {
		return nil, err
	}
	max := r.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	getenv := r.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = nil // /dev/null: the tools see EOF at once
	cmd.Env = ChildEnv(getenv)
	out := &cappedBuffer{max: max}
	cmd.Stdout = out
	cmd.Stderr = out
	err = cmd.Run()
	if ctx.Err() != nil {
		return out.Bytes(), fmt.Errorf("%s: %w", name, errors.Join(ctx.Err(), err))
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w", name, err)
	}
	return out.Bytes(), nil
}

// cappedBuffer keeps the first max bytes written to it and drops the rest.
type cappedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
