package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gmailtls/gmailtls/alerts"
	"github.com/gmailtls/gmailtls/bot"
	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/leader"
	"github.com/gmailtls/gmailtls/logging"
	"github.com/gmailtls/gmailtls/metrics"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/schedule"
	"github.com/gmailtls/gmailtls/storage"
)

const serveUsage = `usage: gmailtls serve [--config FILE]

Runs the Slack bot (Socket Mode, or HTTP mode with signed requests), the
scheduler (periodic probing of every relay, health reports, retention), the
alerts and their reminders, the outbox and /metrics, /healthz, /readyz on
[http] listen.

Several serve processes may share one database (replicas): every one
answers Slack and serves /metrics, /healthz and /readyz; the one holding
the leader lease runs the scheduler, the alerts' loop and the outbox, and
another takes over within 15 s when it dies.

SIGHUP reloads the configuration (relays, schedules, allowlists) without
dropping the Slack connection; an invalid file is rejected and the old one
kept. SIGTERM or SIGINT stops it cleanly: the running jobs (up to 30 s),
the outbox and the HTTP endpoint are waited for, and the log says which; a
second SIGTERM or SIGINT forces the exit at once (exit status 143 or 130).

`

// shutdownGrace bounds how long running jobs may take to finish on SIGTERM.
const shutdownGrace = 30 * time.Second

func runServe(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cf := addConfigFlag(fs)
	if code, ok := svcParse(e, fs, serveUsage, args); !ok {
		return code
	}
	path, _ := cf.resolve(e)
	cfg, err := config.Load(path, e.getenv)
	if err == nil {
		err = cfg.RequireSlack()
	}
	if err != nil {
		for _, p := range config.Problems(err) {
			fmt.Fprintln(e.stderr, p)
		}
		return exitUsage
	}
	log := logging.New(e.stderr, cfg.Log.Format, cfg.Log.Level)
	d, err := newDaemon(ctx, cfg, log, daemonOptions{})
	if err != nil {
		log.Error("gmailtls serve could not start", "err", err)
		return exitFailed
	}
	onSIGHUP(ctx, func() { d.reload(ctx, path, e.getenv) })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go watchShutdown(done, sigs, log, cancel, os.Exit)

	if err := d.run(ctx); err != nil {
		log.Error("gmailtls serve stopped", "err", err)
		return exitFailed
	}
	return exitOK
}

// watchShutdown handles serve's SIGINT and SIGTERM until done closes: the
// first is logged and calls stop (a clean shutdown, which logs what it
// waits for); the second is logged and forces the exit through exit, with
// 128 + the signal's number (130 for SIGINT, 143 for SIGTERM; 1 for a
// signal without a number).
func watchShutdown(done <-chan struct{}, sigs <-chan os.Signal, log *slog.Logger, stop func(), exit func(int)) {
	first := true
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			if first {
				first = false
				log.Info("shutdown signal received; stopping (a second signal forces the exit)", "signal", sig.String())
				stop()
				continue
			}
			code := exitFailed
			if n, ok := sig.(syscall.Signal); ok {
				code = 128 + int(n)
			}
			log.Warn("second shutdown signal received; exiting at once without waiting", "signal", sig.String(), "exit", code)
			exit(code)
			return
		}
	}
}

// daemonOptions are the seams tests use.
type daemonOptions struct {
	// MetricsListener, when set, serves /metrics on it instead of
	// [http] listen.
	MetricsListener net.Listener
	// OutboxPoll overrides how often the outbox looks for due messages.
	OutboxPoll time.Duration
	// ReplicaID overrides the replica's id in the leader election.
	ReplicaID string
}

// daemon is `gmailtls serve`: every long-running part, wired together.
// Probes, evaluations and their subscribers are the monitor's, the alert
// loop and reminders the alerter's, commands and buttons the handler's,
// the periodic jobs the scheduler's. The elector decides whether this
// replica leads: only the leader runs the scheduler, the alert loop and
// the outbox worker (lead).
type daemon struct {
	log     *slog.Logger
	opts    daemonOptions
	store   *storage.Store
	metrics *metrics.Metrics
	mon     *monitor.Monitor
	alerter *alerts.Alerter
	handler *commands.Handler
	bot     *bot.Bot
	worker  *outbox.Worker
	elector *leader.Elector

	// stopping ends when serve's shutdown began; stopCtx bounds the
	// shutdown (shutdownGrace from the signal).
	stopping context.Context
	stopCtx  context.Context

	mu      sync.Mutex // guards sched, leading and fence
	sched   *schedule.Scheduler
	leading bool          // sched runs (this replica leads)
	fence   storage.Fence // the lease's fence while leading
}

func newDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger, opts daemonOptions) (*daemon, error) {
	d := &daemon{log: log, opts: opts, metrics: metrics.New()}
	runners, err := d.runners(cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, storage.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	d.store = st
	if err := st.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
		st.Close()
		return nil, err
	}
	d.metrics.SetOutboxSource(func(ctx context.Context) (int, time.Duration, int, error) {
		return st.OutboxStats(ctx, time.Now())
	})
	d.mon = monitor.New(monitor.Deps{Config: cfg, Store: st, Runners: runners, Logger: log, MTASTS: &mtasts.Client{}})
	d.alerter = &alerts.Alerter{Store: st, Monitor: d.mon, Logger: log, Notify: func() { d.worker.Notify() }}
	d.alerter.Reload(cfg.Alerts)
	if err := d.exportLevels(ctx); err != nil {
		st.Close()
		return nil, err
	}
	d.mon.Subscribe(func(ev monitor.Evaluation) {
		for name, level := range ev.Levels() {
			d.metrics.SetLevel(name, level)
		}
	})
	d.mon.Subscribe(d.alerter.Observe)
	d.handler = commands.New(commands.Deps{Service: d.mon, Alerts: d.alerter, Logger: log})
	b, err := bot.New(bot.FromConfig(cfg.Slack, st, log), d.handler)
	if err != nil {
		st.Close()
		return nil, err
	}
	d.bot = b
	// The outbox delivers with the bot's Web API client, the process's one.
	d.worker = &outbox.Worker{
		Store:     st,
		Sender:    bot.NewSender(b, func(code string) { d.metrics.SlackError("chat.postMessage", code) }),
		DrawChart: chart.RenderJSON,
		Logger:    log,
		Poll:      opts.OutboxPoll,
		// Only the leader delivers: each message is claimed under the
		// lease's fence first, so a deposed leader posts nothing.
		Claim: func(ctx context.Context, id int64) error { return st.ClaimMessage(ctx, id, d.currentFence()) },
	}
	d.elector = &leader.Elector{Store: st, ID: opts.ReplicaID, Logger: log}
	d.metrics.SetLeaderSource(d.elector.IsLeader)
	if d.sched, err = d.scheduler(cfg); err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// runners builds the relay runners for cfg, each counted by /metrics.
func (d *daemon) runners(cfg *config.Config) (map[string]relay.Runner, error) {
	return relay.Runners(cfg, relay.RunnerOptions{Logger: d.log, Version: version, OnResults: d.metrics.ObserveResults})
}

// scheduler builds the jobs of cfg: probing rounds, reports, retention.
func (d *daemon) scheduler(cfg *config.Config) (*schedule.Scheduler, error) {
	reporter := &schedule.Reporter{Store: d.store, Build: d.handler.Report, Notify: d.worker.Notify, Logger: d.log}
	return schedule.FromConfig(cfg, schedule.Jobs{Round: d.mon.Round, Reporter: reporter, Store: d.store, Logger: d.log})
}

// exportLevels sets the /metrics level gauges from the stored levels
// (monitor.StoredLevels) and drops those of relays no longer configured.
func (d *daemon) exportLevels(ctx context.Context) error {
	levels, err := d.mon.StoredLevels(ctx)
	if err == nil {
		d.metrics.SetLevels(levels)
	}
	return err
}

// run serves until ctx ends.
func (d *daemon) run(ctx context.Context) error {
	defer d.store.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The shutdown's bound counts from the signal, not from the end of
	// the bot's own shutdown (which gives deliveries in flight a grace of
	// their own), so that the whole of it stays within shutdownGrace.
	stopCtx, stopCancel := context.WithCancel(context.Background())
	defer stopCancel()
	context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, stopCancel) })
	d.stopping, d.stopCtx = ctx, stopCtx

	var wg sync.WaitGroup
	srv, err := d.serveHTTP(ctx, &wg)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	// The election tries at once: a single replica leads from the start.
	wg.Go(func() { _ = d.elector.Run(ctx, d.lead) })
	cfg := d.config()
	d.log.Info("gmailtls serve started", "version", version, "mode", cfg.Slack.Mode,
		"relays", len(cfg.Relays), "database", d.store.Path(), "replica", d.elector.Replica())

	botErr := d.bot.Run(ctx)
	cancel()
	d.mu.Lock()
	waitFor := []string{"outbox", "alerts"}
	if srv != nil {
		waitFor = append(waitFor, "http")
	}
	d.log.Info("shutting down: waiting for the running jobs, the outbox, the alerts and the HTTP endpoint",
		"jobs", d.sched.Running(), "waiting_for", waitFor, "grace", shutdownGrace.String())
	d.mu.Unlock()
	if srv != nil {
		_ = srv.Shutdown(stopCtx)
	}
	// The leader's work (scheduled jobs, the outbox worker, the alerter)
	// stops with ctx, then the lease is released; the whole shutdown
	// stays within shutdownGrace even if one does not.
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-stopCtx.Done():
		d.log.Warn("background work did not stop in time; exiting anyway", "grace", shutdownGrace.String())
	}
	d.log.Info("gmailtls serve stopped")
	if botErr != nil && !errors.Is(botErr, context.Canceled) {
		return botErr
	}
	return nil
}

// lead runs the leader-only work, under ctx, which ends as soon as this
// replica may no longer lead: the scheduler (probing rounds, reports,
// retention), the alerter's loop (reconciliation, reminders) and the
// outbox worker, whose claims carry f. On serve's shutdown the scheduled
// jobs get the shutdown's grace; on a lost leadership they are cancelled
// at once.
func (d *daemon) lead(ctx context.Context, f storage.Fence) {
	d.mu.Lock()
	d.fence, d.leading = f, true
	d.sched.Start()
	d.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.worker.Run(ctx) })
	wg.Go(func() { _ = d.alerter.Run(ctx) })
	<-ctx.Done()

	bound := d.stopCtx
	if d.stopping.Err() == nil {
		// Deposed: another replica may lead already.
		now, cancel := context.WithCancel(context.Background())
		cancel()
		bound = now
	}
	d.mu.Lock()
	if err := d.sched.Stop(bound); err != nil && d.stopping.Err() != nil {
		d.log.Warn("scheduled jobs did not finish in time", "err", err)
	}
	d.leading = false
	// A scheduler runs once: the next term gets a fresh one.
	if next, err := d.scheduler(d.config()); err != nil {
		d.log.Error("the scheduler cannot be rebuilt; no schedule until the next reload", "err", err)
	} else {
		d.sched = next
	}
	d.mu.Unlock()
	wg.Wait()
}

// currentFence is the fence of the term this replica leads (the outbox
// worker runs only while it leads).
func (d *daemon) currentFence() storage.Fence {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fence
}

// role names this replica's role and the leader for /readyz.
func (d *daemon) role() (role, leaderID string) {
	st := d.elector.State()
	if st.Leader {
		return "leader", st.ID
	}
	if st.Known && st.Lease.Holder != "" && st.Lease.Expires.After(time.Now()) {
		return "follower", st.Lease.Holder
	}
	return "follower", ""
}

// serveHTTP starts /metrics, /healthz and /readyz unless [http] listen is
// "off".
func (d *daemon) serveHTTP(ctx context.Context, wg *sync.WaitGroup) (*http.Server, error) {
	ln := d.opts.MetricsListener
	if ln == nil {
		var err error
		if ln, err = metrics.Listen(d.config().HTTP.Listen); ln == nil {
			return nil, err
		}
	}
	return d.metrics.Serve(ctx, wg, ln, metrics.Checks{Health: d.store.Ping, Ready: d.bot.CheckReady, Role: d.role}, d.log), nil
}

// reload applies a new configuration file after SIGHUP: relays, schedules,
// allowlists and alert settings change; the Slack connection stays.
// Requests under way finish under the configuration they began with. An
// invalid file is rejected and the old configuration kept.
func (d *daemon) reload(ctx context.Context, path string, getenv func(string) string) {
	cfg, err := config.Load(path, getenv)
	if err == nil {
		err = cfg.RequireSlack()
	}
	var runners map[string]relay.Runner
	if err == nil {
		runners, err = d.runners(cfg)
	}
	var sched *schedule.Scheduler
	if err == nil {
		sched, err = d.scheduler(cfg)
	}
	if err == nil {
		err = d.store.SyncRelays(ctx, relay.RelaySpecs(cfg))
	}
	if err != nil {
		d.log.Error("reload: the new configuration cannot be applied; keeping the old one", "file", path, "err", err)
		return
	}
	old := d.config()
	d.mon.Reload(cfg, runners)
	d.alerter.Reload(cfg.Alerts)
	if err := d.exportLevels(ctx); err != nil {
		d.log.Warn("reload: /metrics keeps the old relays' levels until the next evaluation", "err", err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	d.mu.Lock()
	if err := d.sched.Stop(stopCtx); err != nil {
		d.log.Warn("reload: old scheduled jobs did not finish in time", "err", err)
	}
	d.sched = sched
	if d.leading {
		d.sched.Start()
	}
	d.mu.Unlock()
	if bot.NeedsRestart(old.Slack, cfg.Slack) {
		d.log.Warn("reload: Slack tokens, mode or listen address changed; restart gmailtls to apply them")
	}
	d.log.Info("configuration reloaded", "file", path, "relays", len(cfg.Relays))
}

// config returns the configuration in force.
func (d *daemon) config() *config.Config { return d.mon.Snapshot().Config }
