package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReplayFileName is the replay cache's file in the agent's state_dir.
const ReplayFileName = "replay-cache"

// errReplayFull is returned when the cache has no room left.
var errReplayFull = fmt.Errorf("%w: too many signed requests in the replay window; try again later", ErrSignature)

// errReplayStore marks a signature that could not be written to the replay
// cache's file: the request is refused, since a restart would forget it.
var errReplayStore = errors.New("relay: the replay cache cannot be saved")

// ReplayCache remembers the signatures accepted within the skew window so
// that the same signed request is not accepted twice. It is bounded: when
// it is full even after dropping expired entries, new requests are refused
// (only verified requests ever enter it, so only a holder of the secret can
// fill it).
//
// A cache from OpenReplayCache also keeps its entries in a file, so that a
// request captured before a restart is still refused after it: each
// accepted signature is appended and synced to disk before the request
// runs, and the file is rewritten atomically (a new file renamed over the
// old one), without the expired entries, when it opens and whenever it has
// grown to twice its live entries.
type ReplayCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // signature -> expiry

	path         string   // the file; empty: memory only
	f            *os.File // the file, open for appending; nil when it must be rewritten
	lines        int      // lines in the file
	compactSlack int      // the file is rewritten beyond 2×live entries + this many lines
}

func newReplayCache(max int) *ReplayCache {
	return &ReplayCache{max: max, seen: make(map[string]time.Time), compactSlack: 1024}
}

// OpenReplayCache opens (or creates) the replay cache kept in dir (the
// agent's state_dir, created with mode 0700 if missing), loading the
// signatures still within the skew window at now. Lines it cannot read,
// such as the last one after a crash in mid-write, are skipped: they
// belong to requests that never ran.
func OpenReplayCache(dir string, now time.Time) (*ReplayCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the agent's state directory: %w", err)
	}
	c := newReplayCache(replayCacheSize)
	c.path = filepath.Join(dir, ReplayFileName)
	f, err := os.Open(c.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading the replay cache: %w", err)
	default:
		err := c.load(f, now)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the replay cache %s: %w", c.path, err)
		}
	}
	if err := c.rewrite(now); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads "expiry-unix-seconds signature" lines.
func (c *ReplayCache) load(r io.Reader, now time.Time) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		exp, sig, ok := parseReplayLine(sc.Text())
		if !ok || now.After(exp) {
			continue
		}
		if len(c.seen) >= c.max {
			return fmt.Errorf("more than %d signatures within the replay window", c.max)
		}
		c.seen[sig] = exp
	}
	return sc.Err()
}

func parseReplayLine(line string) (time.Time, string, bool) {
	ts, sig, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(sig, "v1=") || len(sig) != len("v1=")+64 {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(n, 0), sig, true
}

// Len reports the signatures remembered.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Close closes the cache's file. The cache must not be used afterwards.
func (c *ReplayCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}

// check records sig, valid until expiry, and fails when it was already seen
// (ErrSignature) or cannot be saved (errReplayStore).
func (c *ReplayCache) check(sig string, expiry, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[sig]; ok && !now.After(exp) {
		return fmt.Errorf("%w: replayed request (this signature was already used)", ErrSignature)
	}
	if len(c.seen) >= c.max {
		c.prune(now)
		if len(c.seen) >= c.max {
			return errReplayFull
		}
	}
	c.seen[sig] = expiry
	if c.path == "" {
		return nil
	}
	if err := c.save(sig, expiry, now); err != nil {
		delete(c.seen, sig)
		return fmt.Errorf("%w: %w", errReplayStore, err)
	}
	return nil
}

func (c *ReplayCache) prune(now time.Time) {
	for k, exp := range c.seen {
		if now.After(exp) {
			delete(c.seen, k)
		}
	}
}

// save appends sig to the file and syncs it, or rewrites the file when
// appending is not possible; the file is compacted when it has grown to
// twice its live entries.
func (c *ReplayCache) save(sig string, expiry, now time.Time) error {
	if c.f != nil {
		line := strconv.FormatInt(expiry.Unix(), 10) + " " + sig + "\n"
		_, err := c.f.WriteString(line)
		if err == nil {
			err = c.f.Sync()
		}
		if err == nil {
			c.lines++
			if c.lines > 2*len(c.seen)+c.compactSlack {
				// Best effort: the line is already safe in the file.
				_ = c.rewrite(now)
			}
			return nil
		}
		// The file may end in half a line now: rewrite it whole.
		c.f.Close()
		c.f = nil
	}
	return c.rewrite(now)
}

// rewrite writes the live entries to a new file, syncs it, renames it over
// the old one, syncs the folder and reopens the file for appending. When
// it fails before the rename, the old file is left as it was.
func (c *ReplayCache) rewrite(now time.Time) error {
	c.prune(now)
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ReplayFileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing the replay cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	w := bufio.NewWriter(tmp)
	for sig, exp := range c.seen {
		fmt.Fprintf(w, "%d %s\n", exp.Unix(), sig)
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		return fmt.Errorf("writing the replay cache %s: %w", c.path, err)
	}
	if d, err := os.Open(filepath.Dir(c.path)); err == nil {
		d.Sync()
		d.Close()
	}
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the replay cache %s: %w", c.path, err)
	}
	c.f, c.lines = f, len(c.seen)
	return nil
}
