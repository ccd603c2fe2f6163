package maillog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Journald is the mail_log value that reads the systemd journal instead of
// a file.
const Journald = "journald"

// Reading limits.
const (
	// DefaultMaxScan caps the bytes ReadFile reads per request.
	DefaultMaxScan = 512 << 20
	// DefaultMaxJournal caps what ReadJournal keeps of journalctl's output.
	DefaultMaxJournal = 64 << 20
	// chunk is the size of each backward read.
	chunk = 256 << 10
	// slack is how far before the window's start the backward search goes:
	// syslog lines are not strictly in time order.
	slack = 2 * time.Minute
)

// CommandRunner runs a program without a shell and returns its output
// (relay.ExecRunner is one).
type CommandRunner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Options configure Read.
type Options struct {
	// Clock reads timestamps; its Now is the end of the window (default
	// time.Now).
	Clock Clock
	// Limits bound the Aggregator.
	Limits Limits
	// MaxScan caps the bytes read from files (default DefaultMaxScan).
	MaxScan int64
	// Commands runs journalctl for the journald source.
	Commands CommandRunner
}

// Read sums the window of source (a file path or Journald) ending at
// opts.Clock.Now. A log that cannot be read gives a Summary with Available
// false and the reason; the error is only ctx's.
func Read(ctx context.Context, source string, window time.Duration, opts Options) (Summary, error) {
	if opts.Clock.Now.IsZero() {
		opts.Clock.Now = time.Now()
	}
	until := opts.Clock.Now
	since := until.Add(-window)
	agg := NewAggregator(since, until, opts.Clock, opts.Limits)
	var err error
	var truncated bool
	if source == Journald {
		truncated, err = readJournal(ctx, opts.Commands, since, agg)
	} else {
		truncated, err = readFiles(ctx, source, since, opts, agg)
	}
	s := agg.Summary()
	s.Source = source
	s.Truncated = truncated
	if err != nil {
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		s.Available = false
		s.Error = err.Error()
	}
	return s, nil
}

// readFiles reads path, preceded by path.1 when the window reaches past
// path's first line (a rotation within the window).
func readFiles(ctx context.Context, path string, since time.Time, opts Options, agg *Aggregator) (bool, error) {
	maxScan := opts.MaxScan
	if maxScan <= 0 {
		maxScan = DefaultMaxScan
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("opening the mail log: %w", err)
	}
	defer f.Close()
	start, whole, err := findStart(f, since, opts.Clock, maxScan)
	if err != nil {
		return false, fmt.Errorf("reading the mail log %s: %w", path, err)
	}
	truncated := false
	if whole {
		// The window starts before this file: the rotated one holds the
		// rest. A compressed one (mail.log.2.gz) is not read.
		if g, err := os.Open(path + ".1"); err == nil {
			if fi, err := g.Stat(); err == nil && fi.Mode().IsRegular() {
				st, _ := f.Stat()
				rest := maxScan
				if st != nil {
					rest -= st.Size()
				}
				if rest > 0 {
					s1, _, err := findStart(g, since, opts.Clock, rest)
					if err == nil {
						if s1 < 0 {
							truncated, s1 = true, -s1
						}
						if err := forward(ctx, g, s1, agg); err != nil {
							g.Close()
							return false, err
						}
					}
				} else {
					truncated = true
				}
			}
			g.Close()
		}
	} else if start < 0 {
		truncated, start = true, -start
	}
	return truncated, forward(ctx, f, start, agg)
}

// findStart searches f backwards for the offset of the first line at most
// slack before since. whole is set when the whole file is in the window
// (start 0). A negative start -n means the byte cap stopped the search:
// read from n.
func findStart(f *os.File, since time.Time, c Clock, maxScan int64) (start int64, whole bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	size := fi.Size()
	limit := since.Add(-slack)
	buf := make([]byte, chunk)
	pos := size
	for pos > 0 {
		if size-pos >= maxScan {
			return -lineAfter(f, pos, buf), false, nil
		}
		n := int64(chunk)
		if pos < n {
			n = pos
		}
		off := pos - n
		b := buf[:n]
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, false, err
		}
		// The lines wholly inside b, after its first newline (or from 0).
		i := 0
		if off > 0 {
			j := bytes.IndexByte(b, '\n')
			if j < 0 {
				pos = off
				continue
			}
			i = j + 1
		}
		for i < len(b) {
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			if t, ok := Timestamp(string(b[i:min(end, i+64)]), c); ok {
				if t.Before(limit) {
					return off + int64(i), false, nil
				}
				break
			}
			if j < 0 {
				break
			}
			i = end + 1
		}
		pos = off
	}
	return 0, true, nil
}

// lineAfter is the offset of the first line that starts at or after pos.
func lineAfter(f *os.File, pos int64, buf []byte) int64 {
	if pos == 0 {
		return 0
	}
	for off := pos - 1; ; {
		n, err := f.ReadAt(buf, off)
		if j := bytes.IndexByte(buf[:n], '\n'); j >= 0 {
			return off + int64(j) + 1
		}
		if err != nil {
			return off + int64(n)
		}
		off += int64(n)
	}
}

// forward feeds the lines of f from start to the end to agg.
func forward(ctx context.Context, f *os.File, start int64, agg *Aggregator) error {
	r := bufio.NewReaderSize(io.NewSectionReader(f, start, 1<<62), 1<<20)
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line over 1 MiB: its start is enough, skip the rest.
			agg.AddLine(string(line[:MaxLineBytes]))
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err == nil {
				continue
			}
		}
		if len(line) > 0 && !errors.Is(err, bufio.ErrBufferFull) {
			agg.AddLine(string(line[:min(len(line), MaxLineBytes)]))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("reading the mail log: %w", err)
		}
	}
}

// JournalArgs are journalctl's arguments for the window since since:
// Postfix's and Exim's units, ISO timestamps with the zone, newest first
// (so that a cut keeps the newest lines).
func JournalArgs(since time.Time) []string {
	return []string{"-u", "postfix*", "-u", "exim*", "-o", "short-iso", "--since", "@" + strconv.FormatInt(since.Unix(), 10),
		"--no-pager", "--quiet", "--reverse"}
}

// readJournal runs journalctl and feeds its lines, oldest first.
func readJournal(ctx context.Context, cmds CommandRunner, since time.Time, agg *Aggregator) (bool, error) {
	if cmds == nil {
		return false, errors.New("no command runner for journalctl")
	}
	out, err := cmds.Run(ctx, "journalctl", JournalArgs(since)...)
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			return false, fmt.Errorf("journalctl failed: %w: %s (the agent needs the systemd-journal group)", err, msg)
		}
		return false, fmt.Errorf("journalctl failed: %w", err)
	}
	truncated := len(out) >= DefaultMaxJournal
	lines := strings.Split(string(out), "\n")
	if truncated && len(lines) > 0 {
		lines = lines[:len(lines)-1] // cut short
	}
	slices.Reverse(lines)
	for i, l := range lines {
		if i%4096 == 0 && ctx.Err() != nil {
			return truncated, ctx.Err()
		}
		if l != "" {
			agg.AddLine(l)
		}
	}
	return truncated, nil
}
