package main

import (
	"context"
	"errors"
	"time"

	"github.com/gmailtls/gmailtls/commands"
)

// alerter is what the alert loop drives: reconcile levels with incidents
// (Sync), remind, and the Acknowledge and Mute buttons.
type alerter interface {
	Sync(ctx context.Context) error
	Remind(ctx context.Context) error
	Acknowledge(ctx context.Context, incidentID int64, userID string) (commands.Response, error)
	Mute(ctx context.Context, incidentID int64, userID string, d time.Duration) (commands.Response, error)
}

// errNoAlerts is returned by alert buttons when no alert channel is set.
var errNoAlerts = errors.New("alerts are not configured: set [alerts] channel")

// alertLoop runs the alerter's reconciliation one at a time, whenever a
// level changed or a probing round ended, outside the request that caused
// it (confirming re-probes take seconds; a slash command must not wait).
type alertLoop struct {
	d    *daemon
	a    alerter
	wake chan struct{}
}

func newAlertLoop(d *daemon) *alertLoop {
	return &alertLoop{d: d, wake: make(chan struct{}, 1)}
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
		if l.a == nil {
			continue
		}
		if err := l.a.Sync(ctx); err != nil && ctx.Err() == nil {
			l.d.log.Error("alerts: reconciling levels with incidents failed; will retry on the next change", "err", err)
		}
		l.d.worker.Notify()
	}
}

func (l *alertLoop) remind(ctx context.Context) error {
	if l.a == nil {
		return nil
	}
	err := l.a.Remind(ctx)
	l.d.worker.Notify()
	return err
}

func (l *alertLoop) acknowledge(ctx context.Context, id int64, user string) (commands.Response, error) {
	if l.a == nil {
		return commands.Response{}, errNoAlerts
	}
	defer l.d.worker.Notify()
	return l.a.Acknowledge(ctx, id, user)
}

func (l *alertLoop) mute(ctx context.Context, id int64, user string, d time.Duration) (commands.Response, error) {
	if l.a == nil {
		return commands.Response{}, errNoAlerts
	}
	defer l.d.worker.Notify()
	return l.a.Mute(ctx, id, user, d)
}
