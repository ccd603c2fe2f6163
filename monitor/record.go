package monitor

import (
	"context"
	"fmt"

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
