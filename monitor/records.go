package monitor

import (
	"context"
	"errors"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// StoredResult is one stored probe result as the commands present it: the
// probe result with its storage ids and what triggered its run.
type StoredResult struct {
	ID    int64
	RunID int64
	probe.Result
	Trigger message.Source
}

// storedResult is the model of a result read from storage.
func storedResult(r storage.StoredResult) StoredResult {
	return StoredResult{ID: r.ID, RunID: r.RunID, Result: r.Result, Trigger: r.Trigger}
}

// HistoryQuery selects stored results for History.
type HistoryQuery struct {
	// Relay is empty for every relay.
	Relay string
	// Since is inclusive.
	Since time.Time
	// Limit bounds the results read, newest first; 0 reads them all.
	Limit        int
	FailuresOnly bool
	// WithTranscript loads the kept transcripts too (slower).
	WithTranscript bool
}

// History returns the stored results q selects, newest first; none (and
// no error) for a relay that has never stored one.
func (m *Monitor) History(ctx context.Context, q HistoryQuery) ([]StoredResult, error) {
	rs, err := m.store.History(ctx, storage.HistoryQuery{Relay: q.Relay, Since: q.Since, Limit: q.Limit, FailuresOnly: q.FailuresOnly, WithTranscript: q.WithTranscript})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]StoredResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, storedResult(r))
	}
	return out, nil
}

// Result returns one stored result with its transcript; found is false
// when retention removed it (or it never existed).
func (m *Monitor) Result(ctx context.Context, id int64) (r StoredResult, found bool, err error) {
	sr, err := m.store.Result(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return StoredResult{}, false, nil
	}
	if err != nil {
		return StoredResult{}, false, err
	}
	return storedResult(sr), true, nil
}

// KnownRelay reports whether name is a relay of the stored history,
// configured now or retired (retired relays keep their history).
func (m *Monitor) KnownRelay(ctx context.Context, name string) (bool, error) {
	rels, err := m.store.Relays(ctx, true)
	if err != nil {
		return false, err
	}
	for _, r := range rels {
		if r.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// Pause makes scheduled probing skip a relay until the given time; by is
// who asked.
func (m *Monitor) Pause(ctx context.Context, relayName string, until time.Time, by string) error {
	return m.store.PauseRelay(ctx, relayName, until, by)
}

// Resume ends a relay's pause; by is who asked.
func (m *Monitor) Resume(ctx context.Context, relayName, by string) error {
	return m.store.ResumeRelay(ctx, relayName, by)
}

// AuditEntry is one request in the audit log: who asked what, where, and
// how it ended.
type AuditEntry struct {
	UserID    string
	UserName  string
	ChannelID string
	Text      string
	Source    message.Source
	At        time.Time
	Outcome   string
}

// Audit writes one request to the audit log.
func (m *Monitor) Audit(ctx context.Context, a AuditEntry) error {
	return m.store.Audit(ctx, storage.AuditEntry(a))
}
