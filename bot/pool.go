package bot

import (
	"context"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/message"
)

// job is background work for one command or button press: deliver pre
// (an acknowledgement too big for the ack itself) and, if run is set, call
// Handler.Run and deliver its Response.
type job struct {
	org origin
	req message.Request
	pre *message.Response
	run bool
}

// pool is a bounded worker pool with a bounded queue. A caller reserves a
// queue slot before it acknowledges, so that "busy" can still be the ack,
// and submits after the ack went out, so the result never overtakes it.
type pool struct {
	workers int
	jobs    chan job
	slots   chan struct{}
	fn      func(context.Context, job)
}

func newPool(workers, queue int, fn func(context.Context, job)) *pool {
	return &pool{
		workers: workers,
		jobs:    make(chan job, queue),
		slots:   make(chan struct{}, queue),
		fn:      fn,
	}
}

// reserve takes a queue slot; false means the queue is full.
func (p *pool) reserve() bool {
	select {
	case p.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// submit queues j into a slot taken by reserve; it never blocks.
func (p *pool) submit(j job) { p.jobs <- j }

// start runs the workers until ctx ends.
func (p *pool) start(ctx context.Context, wg *sync.WaitGroup) {
	for range p.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.jobs:
					p.fn(ctx, j)
					<-p.slots
				}
			}
		})
	}
}

// drain drops the jobs still queued after the workers stopped and returns
// how many there were.
func (p *pool) drain() int {
	n := 0
	for {
		select {
		case <-p.jobs:
			<-p.slots
			n++
		default:
			return n
		}
	}
}

// dedupe remembers Socket Mode envelope IDs so that a redelivered envelope
// is acknowledged but not run twice.
type dedupe struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// dedupeWindow is how long an envelope ID is remembered; Slack retries
// within minutes.
const dedupeWindow = 15 * time.Minute

func newDedupe() *dedupe { return &dedupe{seen: map[string]time.Time{}} }

// first reports whether id is seen for the first time, and remembers it.
func (d *dedupe) first(id string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.seen) >= 1024 {
		for k, t := range d.seen {
			if now.Sub(t) > dedupeWindow {
				delete(d.seen, k)
			}
		}
	}
	if t, ok := d.seen[id]; ok && now.Sub(t) <= dedupeWindow {
		return false
	}
	d.seen[id] = now
	return true
}

// Slack's limits on one response_url.
const (
	responseURLMaxUses = 5
	responseURLMaxAge  = 30 * time.Minute
)

// responseURLs counts the uses of each response_url since the command or
// button press that brought it.
type responseURLs struct {
	mu sync.Mutex
	m  map[string]*urlUse
}

type urlUse struct {
	first time.Time
	used  int
}

func newResponseURLs() *responseURLs { return &responseURLs{m: map[string]*urlUse{}} }

// register notes that u arrived at at.
func (r *responseURLs) register(u string, at time.Time) {
	if u == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.m {
		if at.Sub(v.first) > responseURLMaxAge {
			delete(r.m, k)
		}
	}
	if _, ok := r.m[u]; !ok {
		r.m[u] = &urlUse{first: at}
	}
}

// take reserves one use of u at now; false means u is used up or expired
// and the caller must fall back to the Web API.
func (r *responseURLs) take(u string, now time.Time) bool {
	if u == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[u]
	if !ok {
		// Never registered, or forgotten because it is older than 30
		// minutes.
		return false
	}
	if e.used >= responseURLMaxUses || now.Sub(e.first) >= responseURLMaxAge {
		return false
	}
	e.used++
	return true
}
