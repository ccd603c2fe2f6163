package probe

import (
	"context"
	"errors"
)

// ErrConfig marks a probe configuration that cannot run.
var ErrConfig = errors.New("probe: invalid configuration")

// Run probes every MX × IP × source combination that cfg names and returns
// one result each. A failed probe is a Result with a failure class; the
// error is non-nil only when the probe could not run at all.
func Run(ctx context.Context, cfg Config) (Report, error) {
	return Report{}, errors.New("probe: not implemented yet")
}
