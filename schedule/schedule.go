// Package schedule runs gmailtls's periodic work on robfig/cron/v3 specs:
// the probing round over every relay, the health-summary reports posted to
// channels, and the alert reminders.
//
// Work flows like this:
//
//  1. New parses every spec (five fields or descriptors such as "@every 5m"
//     and "@daily", with an optional "CRON_TZ=Europe/Berlin " prefix) and
//     registers one job per spec;
//  2. each job is wrapped with cron.SkipIfStillRunning (a slow round never
//     overlaps the next) around cron.Recover (a panic is logged, not fatal,
//     and the job's next run still happens);
//  3. a probing job calls Config.ProbeRound (the wiring passes a function
//     that checks every relay not paused with monitor.Monitor.Round and
//     then lets the alerter reconcile), a report job Config.Report (a Reporter enqueues
//     the summary in the outbox), the reminder job Config.Remind;
//  4. Stop stops scheduling and waits, within its context's bound, for the
//     jobs that are running; past the bound their context is cancelled.
//
// Nothing here talks to Slack or SQL directly; the jobs are functions.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrSpec marks a schedule that cannot be parsed.
var ErrSpec = errors.New("schedule: invalid schedule")

// DefaultRemind is the reminder check's schedule.
const DefaultRemind = "@every 1m"

// ReportJob is one scheduled health summary ([[report]] in the config).
type ReportJob struct {
	// Spec is the cron spec, e.g. "CRON_TZ=Europe/Berlin 0 9 * * 1-5".
	Spec    string
	Channel string
	// Window is how far back the summary looks (0: 24h).
	Window time.Duration
}

// DefaultReportWindow is a report's window when its job leaves it zero.
const DefaultReportWindow = 24 * time.Hour

// Config says what runs when.
type Config struct {
	// Probing is the probing round's spec; "" or "off" disables it.
	Probing string
	Reports []ReportJob
	// RemindSpec is the reminder check's spec (default DefaultRemind);
	// "off" disables it.
	RemindSpec string
	// Location is the time zone of specs without CRON_TZ (default
	// time.Local).
	Location *time.Location
	// Now is the clock used in log lines (default time.Now). The cron
	// loop itself runs on the runtime clock, which testing/synctest
	// fakes.
	Now    func() time.Time
	Logger *slog.Logger

	// The jobs. A nil job is not scheduled.
	ProbeRound func(ctx context.Context) error
	Report     func(ctx context.Context, channel string, window time.Duration) error
	Remind     func(ctx context.Context) error
}

// Scheduler runs the configured jobs. Create it with New.
type Scheduler struct {
	cron   *cron.Cron
	log    *slog.Logger
	now    func() time.Time
	ctx    context.Context
	cancel context.CancelFunc
	jobs   []Job

	mu      sync.Mutex
	started bool
}

// Job describes one scheduled job, for status output.
type Job struct {
	Name string
	Spec string
	id   cron.EntryID
}

// New parses every spec and prepares the jobs; it starts nothing.
func New(cfg Config) (*Scheduler, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	loc := cfg.Location
	if loc == nil {
		loc = time.Local
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	cl := cronLogger{log: log}
	s := &Scheduler{
		// SkipIfStillRunning must wrap Recover, not the other way round:
		// it hands its token back without a defer, so a panic passing
		// through it would skip every later run of the job.
		cron: cron.New(cron.WithLocation(loc), cron.WithLogger(cl),
			cron.WithChain(cron.SkipIfStillRunning(cl), cron.Recover(cl))),
		log: log,
		now: now,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	var errs []error
	add := func(name, spec string, run func(ctx context.Context) error) {
		id, err := s.cron.AddFunc(spec, s.wrap(name, run))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %q: %w", ErrSpec, name, spec, err))
			return
		}
		s.jobs = append(s.jobs, Job{Name: name, Spec: spec, id: id})
	}
	if p := strings.TrimSpace(cfg.Probing); p != "" && p != "off" && cfg.ProbeRound != nil {
		add("probing", p, cfg.ProbeRound)
	}
	if cfg.Report != nil {
		for i, r := range cfg.Reports {
			window := r.Window
			if window <= 0 {
				window = DefaultReportWindow
			}
			channel := r.Channel
			add(fmt.Sprintf("report[%d] to %s", i, channel), strings.TrimSpace(r.Spec), func(ctx context.Context) error {
				return cfg.Report(ctx, channel, window)
			})
		}
	}
	if cfg.Remind != nil {
		spec := strings.TrimSpace(cfg.RemindSpec)
		if spec == "" {
			spec = DefaultRemind
		}
		if spec != "off" {
			add("reminders", spec, cfg.Remind)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// ValidSpec checks a spec the way New parses it (for configuration checks).
func ValidSpec(spec string) error {
	if _, err := cron.ParseStandard(strings.TrimSpace(spec)); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrSpec, spec, err)
	}
	return nil
}

// wrap turns a job function into a cron job that logs its outcome.
func (s *Scheduler) wrap(name string, run func(ctx context.Context) error) func() {
	return func() {
		start := s.now()
		err := run(s.ctx)
		took := s.now().Sub(start)
		if err != nil {
			s.log.Error("schedule: job failed", "job", name, "took", took, "err", err)
			return
		}
		s.log.Debug("schedule: job done", "job", name, "took", took)
	}
}

// Jobs lists the scheduled jobs with their next run (zero before Start).
func (s *Scheduler) Jobs() []JobStatus {
	out := make([]JobStatus, 0, len(s.jobs))
	for _, j := range s.jobs {
		e := s.cron.Entry(j.id)
		out = append(out, JobStatus{Name: j.Name, Spec: j.Spec, Next: e.Next, Prev: e.Prev})
	}
	return out
}

// JobStatus is a job with its previous and next run.
type JobStatus struct {
	Name, Spec string
	Prev, Next time.Time
}

// Start starts the cron loop in its own goroutine. It is a no-op when
// already started.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	s.cron.Start()
	for _, j := range s.Jobs() {
		s.log.Info("schedule: job scheduled", "job", j.Name, "spec", j.Spec, "next", j.Next)
	}
}

// Stop stops scheduling and waits for the running jobs to end, within
// ctx's bound. Past the bound it cancels the jobs' context and returns an
// error naming the bound; the jobs then end on their own.
func (s *Scheduler) Stop(ctx context.Context) error {
	done := s.cron.Stop()
	select {
	case <-done.Done():
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("schedule: running jobs did not end before the shutdown bound; they were cancelled: %w", ctx.Err())
	}
}

// cronLogger adapts slog to cron.Logger.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, keysAndValues ...any) {
	// cron's routine messages (wake, run, schedule) are debug material;
	// "skip" (a job still running) deserves more.
	level := slog.LevelDebug
	if msg == "skip" {
		level = slog.LevelWarn
		msg = "job still running; this run is skipped"
	}
	l.log.Log(context.Background(), level, "cron: "+msg, keysAndValues...)
}

func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.log.Error("cron: "+msg, append(keysAndValues, "err", err)...)
}
