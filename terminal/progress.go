package terminal

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress shows a long command's progress to the person waiting for it:
// each line as it arrives (one per MX address probed) and, on a terminal,
// a status line under them with a live elapsed counter ("waiting for
// relay-2's agent… 12 s"), redrawn every second and cleared at the end.
// Where the output is no terminal (a pipe, a file, a test) it writes the
// lines alone, with no carriage return nor escape code. Its methods are
// safe for concurrent use.
type Progress struct {
	out io.Writer
	tty bool

	mu      sync.Mutex
	status  string
	started time.Time
	drawn   bool // the status line is on screen
	stop    chan struct{}
	done    chan struct{}
}

// NewProgress writes progress to out; tty says whether out is a terminal
// (IsTerminal).
func NewProgress(out io.Writer, tty bool) *Progress {
	return &Progress{out: out, tty: tty}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// clearLine returns to the start of the line and erases it.
const clearLine = "\r\x1b[K"

// Start starts the elapsed counter under status (a terminal only); Stop
// ends it. Start on a started Progress only changes the status.
func (p *Progress) Start(status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = sanitize(status)
	if !p.tty || p.stop != nil {
		p.drawLocked()
		return
	}
	p.started = time.Now()
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.drawLocked()
	go p.tick(p.stop, p.done)
}

// SetStatus changes what the counter says it waits for.
func (p *Progress) SetStatus(status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = sanitize(status)
	p.drawLocked()
}

func (p *Progress) tick(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.drawLocked()
			p.mu.Unlock()
		}
	}
}

// drawLocked redraws the status line on a terminal while the counter runs.
func (p *Progress) drawLocked() {
	if !p.tty || p.stop == nil || p.status == "" {
		return
	}
	secs := int(time.Since(p.started) / time.Second)
	fmt.Fprintf(p.out, "%s%s… %d s", clearLine, p.status, secs)
	p.drawn = true
}

// Line writes one line (above the status line on a terminal).
func (p *Progress) Line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		io.WriteString(p.out, clearLine)
		p.drawn = false
	}
	fmt.Fprintln(p.out, sanitize(s))
	p.drawLocked()
}

// Stop ends the counter and clears its line, so that what follows starts
// on a clean line. It is safe to call more than once.
func (p *Progress) Stop() {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop, p.done = nil, nil
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		io.WriteString(p.out, clearLine)
		p.drawn = false
	}
}
