package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/alerts"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
)

// alerter is what the alert loop drives: reconcile levels with incidents
// (Sync), remind, and the Acknowledge and Mute buttons (alerts.Alerter).
type alerter interface {
	Sync(ctx context.Context) error
	Remind(ctx context.Context) error
	Acknowledge(ctx context.Context, id int64, userID string) (message.Response, error)
	Mute(ctx context.Context, id int64, userID string, d time.Duration) (message.Response, error)
}

// errNoAlerts is returned by alert buttons when no alert channel is set.
var errNoAlerts = errors.New("alerts are not configured: set [alerts] channel")

// alertLoop runs the alerter's reconciliation one at a time, whenever a
// level changed or a probing round ended, outside the request that caused
// it (confirming re-probes take seconds; a slash command must not wait).
type alertLoop struct {
	d    *daemon
	wake chan struct{}

	mu sync.Mutex
	a  alerter // nil: no alerts channel configured
}

func newAlertLoop(d *daemon) *alertLoop {
	return &alertLoop{d: d, wake: make(chan struct{}, 1)}
}

// configure builds the alerter for cfg: levels come from the command
// handler's evaluation, confirmations re-probe through it (trigger
// "confirm"), messages go to the outbox. Without [alerts] channel there is
// no alerter and nothing is posted.
func (l *alertLoop) configure(cfg *config.Config) {
	d := l.d
	if cfg.Alerts.Channel == "" {
		l.set(nil)
		return
	}
	check := func(ctx context.Context, name string, mx []string) ([]probe.Result, error) {
		c, err := d.mon.CheckRelay(ctx, monitor.Check{Relay: name, MX: mx, Trigger: message.SourceConfirm, RequestedBy: "gmailtls"})
		return c.Report.Results, err
	}
	relays := func(ctx context.Context) []string {
		names, _ := d.mon.ActiveRelays(ctx)
		return names
	}
	l.set(&alerts.Alerter{
		Store:       d.store,
		Channel:     cfg.Alerts.Channel,
		PostWatch:   cfg.Alerts.PostWatch,
		RemindEvery: cfg.Alerts.RemindEvery.Duration,
		FlapLimit:   cfg.Alerts.FlapLimit,
		Now:         d.opts.Now,
		Logger:      d.log,
		Notify:      d.worker.Notify,
		Evaluate: func(ctx context.Context) (escalation.Assessment, error) {
			ev, err := d.mon.Evaluate(ctx)
			return ev.Assessment, err
		},
		Confirm: alerts.NewConfirm(check, relays, d.log),
	})
}

func (l *alertLoop) set(a alerter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.a = a
}

func (l *alertLoop) get() alerter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.a
}

// kick asks for a reconciliation soon; it never blocks.
func (l *alertLoop) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run reconciles on every kick until ctx ends.
func (l *alertLoop) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		a := l.get()
		if a == nil {
			continue
		}
		if err := a.Sync(ctx); err != nil && ctx.Err() == nil {
			l.d.log.Error("alerts: reconciling levels with incidents failed; will retry on the next change", "err", err)
		}
		l.d.worker.Notify()
	}
}

func (l *alertLoop) remind(ctx context.Context) error {
	a := l.get()
	if a == nil {
		return nil
	}
	err := a.Remind(ctx)
	l.d.worker.Notify()
	return err
}

// Acknowledge runs an alert's Acknowledge button (commands.Alerts).
func (l *alertLoop) Acknowledge(ctx context.Context, id int64, userID string) (message.Response, error) {
	a := l.get()
	if a == nil {
		return message.Response{Title: errNoAlerts.Error(), Verdict: message.VerdictWarn, Summary: errNoAlerts.Error(), Ephemeral: true}, errNoAlerts
	}
	defer l.d.worker.Notify()
	return a.Acknowledge(ctx, id, userID)
}

// Mute runs an alert's Mute button (commands.Alerts).
func (l *alertLoop) Mute(ctx context.Context, id int64, userID string, d time.Duration) (message.Response, error) {
	a := l.get()
	if a == nil {
		return message.Response{Title: errNoAlerts.Error(), Verdict: message.VerdictWarn, Summary: errNoAlerts.Error(), Ephemeral: true}, errNoAlerts
	}
	defer l.d.worker.Notify()
	return a.Mute(ctx, id, userID, d)
}
