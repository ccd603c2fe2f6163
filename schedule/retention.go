package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// Rollupper applies retention to the database (the storage.Store).
type Rollupper interface {
	Rollup(ctx context.Context, rawBefore, rollupBefore time.Time) (storage.RollupStats, error)
}

// Retainer applies the [retention] section: raw results older than Raw
// become hourly aggregates, and aggregates, audit entries and delivered
// messages older than Rollup are deleted. Its Run method is
// Config.Retention.
type Retainer struct {
	Store Rollupper
	// Raw and Rollup are [retention] raw and rollup.
	Raw, Rollup time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// Run rolls up once. A rollup cut short by ctx (shutdown) is no failure:
// the database stays consistent and the next run continues.
func (r *Retainer) Run(ctx context.Context) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	at := now()
	stats, err := r.Store.Rollup(ctx, at.Add(-r.Raw), at.Add(-r.Rollup))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("retention: rollup failed; the next run tries again: %w", err)
	}
	log.Debug("retention: rollup done", "stats", fmt.Sprintf("%+v", stats))
	return nil
}
