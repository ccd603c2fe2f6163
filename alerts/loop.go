package alerts

import (
	"context"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// DefaultRemindCheck is how often Run looks for due reminders.
const DefaultRemindCheck = time.Minute

// loopState is Run's state: a wake-up that never blocks its sender, and
// the newest evaluation handed over by Observe that no Sync used yet.
type loopState struct {
	once sync.Once
	wake chan struct{}

	mu      sync.Mutex
	latest  *monitor.Evaluation
	lastSeq uint64 // the newest evaluation seen
}

func (l *loopState) init() {
	l.once.Do(func() { l.wake = make(chan struct{}, 1) })
}

// Reload takes the alert settings of the [alerts] section (at start and
// after SIGHUP): channel, post_watch, remind_every ("0s": no reminders)
// and flap_limit. Zero values keep the defaults.
func (a *Alerter) Reload(c config.Alerts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Channel = c.Channel
	a.PostWatch = c.PostWatch
	a.RemindEvery = c.RemindEvery.Duration
	a.NoReminders = c.RemindEvery.Duration <= 0
	a.FlapLimit = c.FlapLimit
}

// Kick asks Run for a Sync soon; it never blocks. Kicks that come while
// one is pending are one.
func (a *Alerter) Kick() {
	a.loop.init()
	select {
	case a.loop.wake <- struct{}{}:
	default:
	}
}

// Observe is the Alerter's subscription to the monitor
// (monitor.Monitor.Subscribe): it keeps the newest evaluation for the
// next Sync and kicks Run when a level changed or a scheduled round ended.
// Other evaluations (a confirming re-probe, a check that moved nothing)
// wait for the next kick: a re-probe that passed must not trigger another
// one at once. It returns at once, whatever the Alerter is doing.
func (a *Alerter) Observe(ev monitor.Evaluation) {
	a.loop.mu.Lock()
	if ev.Seq <= a.loop.lastSeq {
		a.loop.mu.Unlock()
		return // an older evaluation that ended late
	}
	a.loop.lastSeq = ev.Seq
	a.loop.latest = &ev
	a.loop.mu.Unlock()
	if len(ev.Changes) > 0 || ev.Trigger == message.SourceSchedule {
		a.Kick()
	}
}

// takeLatest returns and forgets the evaluation kept by Observe.
func (a *Alerter) takeLatest() *monitor.Evaluation {
	a.loop.mu.Lock()
	defer a.loop.mu.Unlock()
	ev := a.loop.latest
	a.loop.latest = nil
	return ev
}

// Run reconciles alerts until ctx ends: on every Kick, one Sync at a time,
// with the newest evaluation Observe kept (or, without one, evaluating
// through the Monitor), and every RemindCheck it sends the reminders that
// are due (unless NoReminders). Failures are logged and left for the next
// kick; Run returns ctx's error.
func (a *Alerter) Run(ctx context.Context) error {
	a.loop.init()
	every := a.RemindCheck
	if every <= 0 {
		every = DefaultRemindCheck
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.loop.wake:
			var err error
			if ev := a.takeLatest(); ev != nil {
				err = a.syncWith(ctx, ev.Assessment)
			} else {
				err = a.Sync(ctx)
			}
			if err != nil && ctx.Err() == nil {
				a.log().Error("alerts: reconciling levels with incidents failed; will retry on the next change", "err", err)
			}
		case <-tick.C:
			a.mu.Lock()
			off := a.NoReminders
			a.mu.Unlock()
			if off {
				continue
			}
			if err := a.Remind(ctx); err != nil && ctx.Err() == nil {
				a.log().Error("alerts: sending reminders failed; will retry", "err", err)
			}
		}
	}
}
