// Package schedule runs gmailtls's periodic work on robfig/cron/v3 specs:
// the probing round over every relay, the health-summary reports posted to
// channels, and retention (raw results rolled up into hourly aggregates).
//
// Work flows like this:
//
//  1. New parses every spec (five fields or descriptors such as "@every 5m"
//     and "@daily", with an optional "CRON_TZ=Europe/Berlin " prefix) and
//     registers one job per spec;
//  2. each job is wrapped with cron.SkipIfStillRunning (a slow round never
//     overlaps the next) around cron.Recover (a panic is logged, not fatal,
//     and the job's next run still happens);
//  3. a probing job calls Config.ProbeRound (monitor.Monitor.Round: every
//     relay not paused is checked and the round evaluated once; the
//     alerter, subscribed to the monitor, reconciles with that
//     evaluation), which also runs once at Start (a freshly started or
//     reloaded daemon knows its relays' state at once, not one interval
//     later), a report job Config.Report (a Reporter enqueues the summary
//     in the outbox), the retention job Config.Retention (a Retainer),
//     which also runs once at Start;
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
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/robfig/cron/v3"
)

// ErrSpec marks a schedule that cannot be parsed.
var ErrSpec = errors.New("schedule: invalid schedule")

// DefaultRetention is the retention job's schedule.
const DefaultRetention = "@every 1h"

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
	// RetentionSpec is the retention job's spec (default
	// DefaultRetention); "off" disables it.
	RetentionSpec string
	// Location is the time zone of specs without CRON_TZ (default
	// time.Local).
	Location *time.Location
	// Now is the clock used in log lines (default time.Now). The cron
	// loop itself runs on the runtime clock, which testing/synctest
	// fakes.
	Now    func() time.Time
	Logger *slog.Logger

	// The jobs. A nil job is not scheduled.
	//
	// ProbeRound also runs once at Start: after a start or a reload the
	// relays' state should not wait for the next interval.
	ProbeRound func(ctx context.Context) error
	Report     func(ctx context.Context, channel string, window time.Duration) error
	// Retention also runs once at Start (after a stop, the rollup that
	// is due should not wait for the next hour).
	Retention func(ctx context.Context) error
}

// Scheduler runs the configured jobs. Create it with New.
type Scheduler struct {
	cron   *cron.Cron
	log    *slog.Logger
	now    func() time.Time
	ctx    context.Context
	cancel context.CancelFunc
	jobs   []Job
	// atStart are the jobs that also run once at Start, and starting the
	// runs of them under way.
	atStart  []cron.EntryID
	starting sync.WaitGroup

	mu      sync.Mutex
	started bool
	// running counts the runs under way per job name (for Running).
	running map[string]int
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
	add := func(name, spec string, run func(ctx context.Context) error) cron.EntryID {
		id, err := s.cron.AddFunc(spec, s.wrap(name, run))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %q: %w", ErrSpec, name, spec, err))
			return 0
		}
		s.jobs = append(s.jobs, Job{Name: name, Spec: spec, id: id})
		return id
	}
	if p := strings.TrimSpace(cfg.Probing); p != "" && p != "off" && cfg.ProbeRound != nil {
		if id := add("probing", p, cfg.ProbeRound); id != 0 {
			s.atStart = append(s.atStart, id)
		}
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
	if cfg.Retention != nil {
		spec := strings.TrimSpace(cfg.RetentionSpec)
		if spec == "" {
			spec = DefaultRetention
		}
		if spec != "off" {
			if id := add("retention", spec, cfg.Retention); id != 0 {
				s.atStart = append(s.atStart, id)
			}
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
		s.mu.Lock()
		if s.running == nil {
			s.running = map[string]int{}
		}
		s.running[name]++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.running[name]--; s.running[name] <= 0 {
				delete(s.running, name)
			}
			s.mu.Unlock()
		}()
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

// Running names the jobs running now, sorted (for shutdown logs: what a
// stop waits for).
func (s *Scheduler) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.running))
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
	for _, id := range s.atStart {
		// Through the job's chain: a scheduled run never overlaps it.
		job := s.cron.Entry(id).WrappedJob
		s.starting.Go(job.Run)
	}
	for _, j := range s.Jobs() {
		s.log.Info("schedule: job scheduled", "job", j.Name, "spec", j.Spec, "next", j.Next)
	}
}

// Stop stops scheduling and waits for the running jobs to end, within
// ctx's bound. Past the bound it cancels the jobs' context and returns an
// error naming the bound; the jobs then end on their own.
func (s *Scheduler) Stop(ctx context.Context) error {
	cronDone := s.cron.Stop()
	done := make(chan struct{})
	go func() {
		<-cronDone.Done()
		s.starting.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("schedule: running jobs did not end before the shutdown bound; they were cancelled: %w", ctx.Err())
	}
}

// cronLogger adapts slog to cron.Logger.
type cronLogger struct{ log *slog.Logger }

// Info logs cron's routine messages.
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

// Error logs cron's errors (a job's panic, through cron.Recover).
func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.log.Error("cron: "+msg, append(keysAndValues, "err", err)...)
}

// Jobs are what the jobs FromConfig schedules run.
type Jobs struct {
	// Round is the probing round (monitor.Monitor.Round).
	Round func(ctx context.Context) error
	// Reporter enqueues the reports; nil schedules none.
	Reporter *Reporter
	// Store is where retention applies (the storage.Store); nil schedules
	// no retention.
	Store  Rollupper
	Now    func() time.Time
	Logger *slog.Logger
}

// FromConfig prepares the jobs of cfg: the probing round on [probing]
// schedule and at Start, each [[report]] on its cron, and retention
// ([retention] raw and rollup) hourly and at Start. It starts nothing.
func FromConfig(cfg *config.Config, j Jobs) (*Scheduler, error) {
	sc := Config{
		Probing:    cfg.Probing.Schedule,
		Now:        j.Now,
		Logger:     j.Logger,
		ProbeRound: j.Round,
	}
	for _, r := range cfg.Reports {
		sc.Reports = append(sc.Reports, ReportJob{Spec: r.Cron, Channel: r.Channel, Window: r.Window.Duration})
	}
	if j.Reporter != nil {
		sc.Report = j.Reporter.Report
	}
	if j.Store != nil {
		r := &Retainer{Store: j.Store, Raw: cfg.Retention.Raw.Duration, Rollup: cfg.Retention.Rollup.Duration, Now: j.Now, Logger: j.Logger}
		sc.Retention = r.Run
	}
	return New(sc)
}
