package terminal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/gmailtls/gmailtls/message"
)

// Doer runs one request to the end and answers it (commands.Handler).
type Doer interface {
	Do(ctx context.Context, req message.Request) message.Response
}

// Console reads the bot's commands typed at a terminal or piped in, runs
// each with a Doer as the console user, and writes the answers for a
// person: plain text, buttons numbered. Typing a button's number presses
// it; quit, exit or the end of the input leaves.
type Console struct {
	Doer Doer
	// User is who the commands run as: the audit log and probe runs name
	// it.
	User string
	// Out receives the answers.
	Out io.Writer
}

// ErrInterrupted reports that the console's context ended (Ctrl-C) while
// a command ran or input was awaited: what was under way is not shown.
var ErrInterrupted = errors.New("interrupted")

// Run answers the lines of in until quit, exit or the end of the input.
func (c *Console) Run(ctx context.Context, in LineReader) error {
	var buttons []message.Button
	for {
		line, err := in.ReadLine(ctx)
		switch {
		case ctx.Err() != nil:
			return ErrInterrupted
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("reading input: %w", err)
		}
		line = strings.TrimSpace(line)
		switch strings.ToLower(line) {
		case "":
			continue
		case "quit", "exit", `\q`:
			return nil
		}
		req := message.Request{Text: line, UserID: c.User, UserName: c.User, Source: message.SourceConsole}
		if n, err := strconv.Atoi(line); err == nil {
			if n < 1 || n > len(buttons) {
				c.noButton(n, len(buttons))
				continue
			}
			b := buttons[n-1]
			req = message.Request{Action: b.Action, Value: b.Value, UserID: c.User, UserName: c.User, Source: message.SourceConsole}
		}
		resp := c.Doer.Do(ctx, req)
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		if err := Write(c.Out, resp, Options{Buttons: true}); err != nil {
			return err
		}
		fmt.Fprintln(c.Out)
		// Like a chat message's, the buttons of the last answer that had
		// any stay pressable (a transcript answer has none).
		if b := FlattenButtons(resp); len(b) > 0 {
			buttons = b
		}
	}
}

func (c *Console) noButton(n, shown int) {
	if shown == 0 {
		fmt.Fprintf(c.Out, "there is no button %d; no answer has shown buttons yet\n", n)
		return
	}
	fmt.Fprintf(c.Out, "there is no button %d; the last buttons shown were 1 to %d\n", n, shown)
}

// LineReader is where the console reads commands from.
type LineReader interface {
	// ReadLine returns the next line, without its end; io.EOF at the end
	// of the input.
	ReadLine(ctx context.Context) (string, error)
}

// NewLines reads lines from in. When in is a terminal, lines are edited
// and recalled (arrows, Ctrl-A/E/K/U/W, history) behind prompt, written
// to out; otherwise (piped input) they are read as they come and no
// prompt is written.
func NewLines(in io.Reader, out io.Writer, prompt string) LineReader {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return EditLines(in, out, prompt, int(f.Fd()))
	}
	return pipeLines(in)
}

// EditLines reads lines with golang.org/x/term's line editor from in,
// echoing them and the prompt to out. When fd is a terminal's descriptor
// the terminal is in raw mode while a line is typed, and back in its own
// mode while the command runs (so that Ctrl-C interrupts it); fd < 0
// leaves modes alone.
func EditLines(in io.Reader, out io.Writer, prompt string, fd int) LineReader {
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, out}, prompt)
	if fd >= 0 {
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			_ = t.SetSize(w, h)
		}
	}
	return &editLines{t: t, fd: fd, out: out}
}

type editLines struct {
	t   *term.Terminal
	fd  int
	out io.Writer
}

func (l *editLines) ReadLine(context.Context) (string, error) {
	if l.fd >= 0 {
		old, err := term.MakeRaw(l.fd)
		if err != nil {
			return "", fmt.Errorf("the terminal: %w", err)
		}
		defer term.Restore(l.fd, old)
	}
	line, err := l.t.ReadLine()
	if errors.Is(err, io.EOF) {
		// Ctrl-D or Ctrl-C on an empty line: leave the prompt's line.
		fmt.Fprint(l.t, "\n")
	}
	return line, err
}

// pipeLines reads lines as they come. Each line is read in a goroutine,
// so that ReadLine returns when its context ends; nothing is read ahead.
func pipeLines(in io.Reader) LineReader {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	return &pipedLines{sc: sc}
}

type pipedLines struct {
	sc *bufio.Scanner
}

// scanned is one line read, or the end.
type scanned struct {
	line string
	ok   bool
	err  error
}

func (p *pipedLines) ReadLine(ctx context.Context) (string, error) {
	ch := make(chan scanned, 1)
	go func() {
		ok := p.sc.Scan()
		ch <- scanned{p.sc.Text(), ok, p.sc.Err()}
	}()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case s := <-ch:
		switch {
		case s.ok:
			return s.line, nil
		case s.err != nil:
			return "", s.err
		}
		return "", io.EOF
	}
}
