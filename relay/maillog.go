package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gmailtls/gmailtls/maillog"
)

// Mail log windows: GET /v1/log?window= takes a Go duration between
// MinLogWindow and MaxLogWindow; without one, DefaultLogWindow.
const (
	DefaultLogWindow = time.Hour
	MinLogWindow     = time.Minute
	MaxLogWindow     = 7 * 24 * time.Hour
)

// logTimeout bounds one read of the mail log.
const logTimeout = 60 * time.Second

// LogReader is a relay that can read its MTA's own mail log (the
// [agent] mail_log): what the relay's Postfix or Exim saw toward the
// target over a window. The Summary has Available false, with the reason,
// when the relay has no mail log configured or cannot read it.
type LogReader interface {
	Log(ctx context.Context, window time.Duration) (maillog.Summary, error)
}

// ParseLogWindow reads a window of GET /v1/log: empty means
// DefaultLogWindow; anything else must be a Go duration within
// [MinLogWindow, MaxLogWindow].
func ParseLogWindow(s string) (time.Duration, error) {
	if s == "" {
		return DefaultLogWindow, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinLogWindow || d > MaxLogWindow {
		return 0, fmt.Errorf("%w: window %q: want a duration from %s to %s, such as 1h", ErrOptions, truncate(s, 20), MinLogWindow, MaxLogWindow)
	}
	return d, nil
}

// Log reads the window of the relay's mail log ending now: the file, or
// the journal through journalctl (run like the other tools, with the
// minimal environment). Without a mail log configured, or when it cannot
// be read, the Summary says so (Available false); the error is only for a
// window out of range.
func (l *Local) Log(ctx context.Context, window time.Duration) (maillog.Summary, error) {
	if window < MinLogWindow || window > MaxLogWindow {
		return maillog.Summary{}, fmt.Errorf("%w: window %s out of range (%s to %s)", ErrOptions, window, MinLogWindow, MaxLogWindow)
	}
	now := l.now()
	if l.MailLog == "" {
		return maillog.Summary{Since: now.Add(-window), Until: now,
			Error: "no mail log configured on this relay: set [agent] mail_log to the MTA's log file or \"journald\""}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, logTimeout)
	defer cancel()
	s, err := maillog.Read(ctx, l.MailLog, window, maillog.Options{
		Clock:    maillog.Clock{Now: now},
		Commands: l.logCommands(),
	})
	if err != nil {
		s.Available = false
		s.Error = fmt.Sprintf("reading the mail log %s stopped: %v", l.MailLog, err)
		l.logger().Warn("relay: mail log read stopped", "mail_log", l.MailLog, "error", err.Error())
	} else if !s.Available {
		l.logger().Warn("relay: mail log unavailable", "mail_log", l.MailLog, "error", s.Error)
	}
	return s, nil
}

// logCommands runs journalctl: LogCommands, else an ExecRunner of its own
// whose output cap fits a window of the journal.
func (l *Local) logCommands() CommandRunner {
	if l.LogCommands != nil {
		return l.LogCommands
	}
	l.logExecOnce.Do(func() {
		l.logExec = &ExecRunner{MaxOutput: maillog.DefaultMaxJournal, Logger: l.logger()}
	})
	return l.logExec
}

func (s *server) mailLog(w http.ResponseWriter, r *http.Request, _ []byte) {
	window, err := ParseLogWindow(r.URL.Query().Get("window"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	sum, err := s.local.Log(r.Context(), window)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, sum)
}

// Log asks the agent for the window of its mail log. Errors wrap
// ErrAgentUnreachable or ErrAgentError; an agent without a mail log
// answers normally with Available false.
func (a *Agent) Log(ctx context.Context, window time.Duration) (maillog.Summary, error) {
	q := url.Values{"window": {window.String()}}
	data, err := a.do(ctx, http.MethodGet, PathLog+"?"+q.Encode(), nil)
	if err != nil {
		return maillog.Summary{}, err
	}
	var s maillog.Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return maillog.Summary{}, fmt.Errorf("%w: relay %s: the agent's mail log answer is not valid JSON: %w", ErrAgentError, a.name, err)
	}
	return s, nil
}
