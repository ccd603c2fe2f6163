package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/storage"
)

// Reporter enqueues scheduled health summaries in the outbox: the text
// report (with its one-line trend per relay) and, in its thread, the heatmap,
// drawn here for the outbox to upload. Its Report method is Config.Report.
type Reporter struct {
	// Store is where the messages are written (the storage.Store).
	Store outbox.Enqueuer
	// Build computes the health summary over a window ending now and
	// presents it: the report message and its heatmap (the command
	// handler's Report, as /gmailtls report shows it).
	Build func(ctx context.Context, window time.Duration) (message.Response, chart.Heatmap, error)
	// Notify wakes the outbox worker (outbox.Worker.Notify); may be nil.
	Notify func()
	// NoChart leaves the heatmap out.
	NoChart bool
	Now     func() time.Time
	Logger  *slog.Logger
}

// ReportKey is the idempotency key of the report over window to channel
// scheduled at at: a run repeated in the same minute (a restart, a retried
// job) writes nothing twice, while two [[report]] blocks that post to the
// same channel in the same minute with different windows (a daily 24h and
// a weekly 168h summary at 08:00) each go out. Two blocks alike in channel
// and window would post the very same summary, so they share the key.
func ReportKey(channel string, window time.Duration, at time.Time) string {
	return "report:" + channel + ":" + windowKey(window) + ":" + at.UTC().Truncate(time.Minute).Format("2006-01-02T15:04Z")
}

// windowKey writes a window compactly and stably: "24h", "1h30m", "1m30s";
// zero is the default window, as Summary reads it.
func windowKey(d time.Duration) string {
	if d <= 0 {
		d = DefaultReportWindow
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ChartKey is the key of a report's heatmap message.
func ChartKey(reportKey string) string { return reportKey + ":chart" }

// Report builds the summary over window and enqueues it for channel.
func (r *Reporter) Report(ctx context.Context, channel string, window time.Duration) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	at := now()
	resp, hm, err := r.Build(ctx, window)
	if err != nil {
		return fmt.Errorf("schedule: report to %s: computing the summary: %w", channel, err)
	}
	key := ReportKey(channel, window, at)
	created, err := outbox.Put(ctx, r.Store, outbox.Message{
		Key: key, Kind: storage.KindReport, Channel: channel,
		Payload: outbox.Payload{Response: resp},
	})
	if err != nil {
		return fmt.Errorf("schedule: report to %s: %w", channel, err)
	}
	if !created {
		log.Info("schedule: report already enqueued", "key", key)
		return nil
	}
	if !r.NoChart && len(hm.Relays) > 0 && len(hm.Cells) > 0 && len(hm.Cells[0]) > 0 {
		if err := r.putChart(ctx, log, channel, key, at, hm); err != nil {
			return err
		}
	}
	log.Info("schedule: report enqueued", "key", key, "relays", len(hm.Relays), "window", windowKey(window))
	if r.Notify != nil {
		r.Notify()
	}
	return nil
}

// putChart draws hm and enqueues it for upload in the thread of the report
// with key. A chart that cannot be drawn is left out with a warning: the
// report's text trend stands alone.
func (r *Reporter) putChart(ctx context.Context, log *slog.Logger, channel, key string, at time.Time, hm chart.Heatmap) error {
	png, err := chart.Render(hm)
	if err != nil {
		log.Warn("schedule: the report's chart could not be drawn; the report stands without it", "key", key, "err", err)
		return nil
	}
	if _, err := outbox.Put(ctx, r.Store, outbox.Message{
		Key: ChartKey(key), Kind: storage.KindReport, Channel: channel, ThreadKey: key,
		Payload: outbox.Payload{Upload: &outbox.Upload{
			Filename: "gmailtls-" + at.UTC().Format("20060102-1504") + ".png",
			Title:    hm.Title,
			PNG:      png,
		}},
	}); err != nil {
		return fmt.Errorf("schedule: report chart to %s: %w", channel, err)
	}
	return nil
}
