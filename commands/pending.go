package commands

import (
	"slices"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/message"
)

// pendingCalls carries what Acknowledge read of a request over to its Run,
// so that the request is parsed, authorized and validated once and runs
// under the configuration snapshot it was acknowledged with. Requests are
// matched by value (the bot hands Run the very request it acknowledged);
// two alike are interchangeable. A request whose Run never comes (the bot
// answered "busy", or stopped) is forgotten after pendingTTL, and at most
// maxPending are kept, the oldest dropped first: a Run that finds nothing
// reads the request again.
type pendingCalls struct {
	now func() time.Time

	mu    sync.Mutex
	calls []pendingCall // oldest first; as many as requests between ack and run
}

type pendingCall struct {
	req message.Request
	c   *call
	at  time.Time
}

// Bounds of pendingCalls.
const (
	pendingTTL = 10 * time.Minute
	maxPending = 4096
)

// put keeps c for the Run of req.
func (p *pendingCalls) put(req message.Request, c *call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	drop := 0
	for drop < len(p.calls) && (len(p.calls)-drop >= maxPending || now.Sub(p.calls[drop].at) > pendingTTL) {
		drop++
	}
	p.calls = append(slices.Delete(p.calls, 0, drop), pendingCall{req: req, c: c, at: now})
}

// take returns and forgets the oldest call kept for req.
func (p *pendingCalls) take(req message.Request) (*call, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.calls, func(pc pendingCall) bool { return pc.req == req })
	if i < 0 {
		return nil, false
	}
	pc := p.calls[i]
	p.calls = slices.Delete(p.calls, i, i+1)
	if p.now().Sub(pc.at) > pendingTTL {
		return nil, false
	}
	return pc.c, true
}
