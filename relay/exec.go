package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
)

// CommandRunner runs the relay's own tools (openssl, posttls-finger,
// postqueue, postconf, exim). It exists so that tests can inject recorded
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

// ExecRunner runs programs with os/exec, never through a shell. The
// context's deadline kills the program.
type ExecRunner struct {
	// MaxOutput caps the output kept (default DefaultMaxOutput); the rest
	// is discarded.
	MaxOutput int
	// Env, when not nil, is the program's whole environment.
	Env []string
}

// Run implements CommandRunner.
func (r ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s is not installed: %w", name, err)
	}
	max := r.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = nil // /dev/null: the tools see EOF at once
	if r.Env != nil {
		cmd.Env = r.Env
	}
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
