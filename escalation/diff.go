package escalation

import (
	"cmp"
	"slices"
	"time"
)

// Change is one change of level, of a relay or (Relay "") of the global
// state: what storage records as an escalation event and what alerts are
// made of.
type Change struct {
	Relay    string // "" for the global level
	From, To Level
	Scope    Scope
	Advice   string
	Evidence []int64 // observation IDs that caused the new level
	At       time.Time
}

// Rising reports whether the change raises the level.
func (c Change) Rising() bool { return c.To.Rank() > c.From.Rank() }

// Diff lists the level changes from prev to next, relays first (sorted by
// name), then the global one. Only levels count: a change of scope, advice
// or evidence at the same level is no change, so evaluating the same state
// twice never yields the same change twice. A relay missing from prev
// starts at ok; a relay missing from next (retired) yields nothing.
//
// Below incident the global level mirrors the highest relay, so a global
// change that neither reaches nor leaves incident repeats a relay change;
// alerting may skip those.
func Diff(prev, next Assessment, now time.Time) []Change {
	var out []Change
	for _, n := range next.Relays {
		from := LevelOK
		if p, ok := prev.Relay(n.Relay); ok {
			from = Max(LevelOK, p.Level)
		}
		if c, ok := change(n, from, now); ok {
			out = append(out, c)
		}
	}
	if c, ok := change(next.Global, Max(LevelOK, prev.Global.Level), now); ok {
		c.Relay = ""
		out = append(out, c)
	}
	return out
}

func change(n RelayState, from Level, now time.Time) (Change, bool) {
	to := Max(LevelOK, n.Level)
	if to == from {
		return Change{}, false
	}
	return Change{
		Relay:    n.Relay,
		From:     from,
		To:       to,
		Scope:    n.Scope,
		Advice:   n.Advice,
		Evidence: slices.Clone(n.Evidence),
		At:       now,
	}, true
}

// Flap reports a relay (or, with Relay "", the global level) whose level
// went up and down too often.
type Flap struct {
	Relay   string
	Changes int       // changes within the window
	Since   time.Time // the first of them
}

// Flapping returns the relays whose level changed more than limit times in
// (now-window, now], sorted by relay name ("" for the global level first).
// Alerting reports such a relay once as flapping instead of posting every
// change.
func Flapping(changes []Change, now time.Time, window time.Duration, limit int) []Flap {
	from := now.Add(-window)
	byRelay := map[string]*Flap{}
	for _, c := range changes {
		if !c.At.After(from) || c.At.After(now) {
			continue
		}
		f := byRelay[c.Relay]
		if f == nil {
			f = &Flap{Relay: c.Relay, Since: c.At}
			byRelay[c.Relay] = f
		}
		f.Changes++
		if c.At.Before(f.Since) {
			f.Since = c.At
		}
	}
	var out []Flap
	for _, f := range byRelay {
		if f.Changes > limit {
			out = append(out, *f)
		}
	}
	slices.SortFunc(out, func(a, b Flap) int { return cmp.Compare(a.Relay, b.Relay) })
	return out
}
