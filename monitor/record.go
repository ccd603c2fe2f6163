package monitor

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// Recorded is a report stored by Record: its run, its results' ids and the
// evaluation that followed.
type Recorded struct {
	RunID      int64
	ResultIDs  []int64
	Evaluation Evaluation
}

// Record stores a probe report run outside the monitor (`gmailtls probe
// --record`) as a run of its relay triggered from the command line by
// requestedBy, then evaluates escalation as a check would.
func (m *Monitor) Record(ctx context.Context, rep probe.Report, requestedBy string) (Recorded, error) {
	run := storage.Run{Relay: rep.Relay, Trigger: message.SourceCLI, RequestedBy: requestedBy, StartedAt: rep.StartedAt}
	runID, ids, err := m.store.RecordRun(ctx, run, rep.Results)
	if err != nil {
		return Recorded{}, fmt.Errorf("recording the run: %w", err)
	}
	ev, err := m.Evaluate(ctx)
	if err != nil {
		return Recorded{RunID: runID, ResultIDs: ids}, fmt.Errorf("re-evaluating escalation: %w", err)
	}
	return Recorded{RunID: runID, ResultIDs: ids, Evaluation: ev}, nil
}

// Summary is the one line `gmailtls probe --record` prints after recording
// a report of relayName in the database at path: the run, the relay's
// level and every level change, newline-terminated.
func (r Recorded) Summary(relayName, path string) string {
	var b strings.Builder
	st, _ := r.Evaluation.Assessment.Relay(relayName)
	fmt.Fprintf(&b, "recorded run %d (%d results) in %s; %s is at level %s", r.RunID, len(r.ResultIDs), path, relayName, escalation.Max(st.Level))
	for _, c := range r.Evaluation.Changes {
		fmt.Fprintf(&b, "; %s: %s → %s", cmp.Or(c.Relay, "all relays"), c.From, c.To)
	}
	b.WriteString("\n")
	return b.String()
}
