package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/gmailtls/gmailtls/probe"
)

// pathKey identifies one probe path: relay × source × MX × address.
type pathKey struct {
	relayID    int64
	mx         string
	preference uint16
	ip         string
	port       int
	sourceIP   string
	serverName string
}

// pathInfo is a path as read back.
type pathInfo struct {
	key  pathKey
	mxID int64
}

// tlsKey identifies one set of negotiated TLS parameters.
type tlsKey struct {
	version, cipher, group, variant string
	verified                        bool
}

// internCache mirrors the small lookup tables in memory. Rows of those
// tables are never changed once written, so the cache only grows; entries
// created inside a write transaction stay pending until it commits.
type internCache struct {
	mu sync.Mutex

	relays  map[string]int64 // name -> id
	relayBy map[int64]string
	mx      map[string]int64
	mxBy    map[int64]string
	paths   map[pathKey]int64
	pathBy  map[int64]pathInfo
	tls     map[tlsKey]int64
	tlsBy   map[int64]tlsKey
	certs   map[[32]byte]int64
	certBy  map[int64][]probe.Certificate
	pending []func()
}

func (c *internCache) init() {
	c.relays = map[string]int64{}
	c.relayBy = map[int64]string{}
	c.mx = map[string]int64{}
	c.mxBy = map[int64]string{}
	c.paths = map[pathKey]int64{}
	c.pathBy = map[int64]pathInfo{}
	c.tls = map[tlsKey]int64{}
	c.tlsBy = map[int64]tlsKey{}
	c.certs = map[[32]byte]int64{}
	c.certBy = map[int64][]probe.Certificate{}
}

// addPending records a cache update to apply once the transaction commits.
// Only the writer calls it, so pending needs no lock of its own beyond mu.
func (c *internCache) addPending(f func()) {
	c.mu.Lock()
	c.pending = append(c.pending, f)
	c.mu.Unlock()
}

func (c *internCache) commitPending() {
	c.mu.Lock()
	for _, f := range c.pending {
		f()
	}
	c.pending = nil
	c.mu.Unlock()
}

func (c *internCache) discardPending() {
	c.mu.Lock()
	c.pending = nil
	c.mu.Unlock()
}

// interner resolves names to ids inside one write transaction, seeing both
// the committed cache and what this transaction created.
type interner struct {
	ctx   context.Context
	tx    *sql.Tx
	c     *internCache
	now   int64
	local struct {
		relays map[string]int64
		mx     map[string]int64
		paths  map[pathKey]int64
		tls    map[tlsKey]int64
		certs  map[[32]byte]int64
		// chainRefs remembers chains by backing array.
		chainRefs map[chainRef]int64
	}
}

func newInterner(ctx context.Context, tx *sql.Tx, c *internCache, now int64) *interner {
	in := &interner{ctx: ctx, tx: tx, c: c, now: now}
	in.local.relays = map[string]int64{}
	in.local.mx = map[string]int64{}
	in.local.paths = map[pathKey]int64{}
	in.local.tls = map[tlsKey]int64{}
	in.local.certs = map[[32]byte]int64{}
	in.local.chainRefs = map[chainRef]int64{}
	return in
}

// relay returns the id of the relay named name, creating an unconfigured
// relay row (kind "") when it is not known: results of `gmailtls probe
// --record` without a configured relay still get a home.
func (in *interner) relay(name string) (int64, error) {
	if id, ok := in.local.relays[name]; ok {
		return id, nil
	}
	in.c.mu.Lock()
	id, ok := in.c.relays[name]
	in.c.mu.Unlock()
	if ok {
		in.local.relays[name] = id
		return id, nil
	}
	err := in.tx.QueryRowContext(in.ctx, `SELECT id FROM relays WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = in.tx.QueryRowContext(in.ctx,
			`INSERT INTO relays (name, created_at, updated_at) VALUES (?, ?, ?) RETURNING id`,
			name, in.now, in.now).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("relay %q: %w", name, err)
	}
	in.local.relays[name] = id
	in.c.addPending(func() { in.c.relays[name] = id; in.c.relayBy[id] = name })
	return id, nil
}

func (in *interner) mx(name string) (int64, error) {
	if id, ok := in.local.mx[name]; ok {
		return id, nil
	}
	in.c.mu.Lock()
	id, ok := in.c.mx[name]
	in.c.mu.Unlock()
	if ok {
		in.local.mx[name] = id
		return id, nil
	}
	err := in.tx.QueryRowContext(in.ctx,
		`INSERT INTO mx_hosts (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`,
		name).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("mx host %q: %w", name, err)
	}
	in.local.mx[name] = id
	in.c.addPending(func() { in.c.mx[name] = id; in.c.mxBy[id] = name })
	return id, nil
}

// path returns the path id and MX id of r's path from relay relayID.
func (in *interner) path(relayID int64, r *probe.Result) (pathID, mxID int64, err error) {
	k := pathKey{relayID: relayID, mx: r.MX, preference: r.Preference, ip: r.IP, port: r.Port, sourceIP: r.SourceIP, serverName: r.ServerName}
	mxID, err = in.mx(r.MX)
	if err != nil {
		return 0, 0, err
	}
	if id, ok := in.local.paths[k]; ok {
		return id, mxID, nil
	}
	in.c.mu.Lock()
	id, ok := in.c.paths[k]
	in.c.mu.Unlock()
	if ok {
		in.local.paths[k] = id
		return id, mxID, nil
	}
	err = in.tx.QueryRowContext(in.ctx, `
		INSERT INTO paths (relay_id, mx_id, preference, ip, port, source_ip, servername)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (relay_id, mx_id, preference, ip, port, source_ip, servername) DO UPDATE SET port = excluded.port RETURNING id`,
		relayID, mxID, int64(r.Preference), r.IP, r.Port, r.SourceIP, r.ServerName).Scan(&id)
	if err != nil {
		return 0, 0, fmt.Errorf("path %s[%s]:%d: %w", r.MX, r.IP, r.Port, err)
	}
	in.local.paths[k] = id
	info := pathInfo{key: k, mxID: mxID}
	in.c.addPending(func() { in.c.paths[k] = id; in.c.pathBy[id] = info })
	return id, mxID, nil
}

// tlsParams returns the id of t's parameters, or a NULL for no TLS.
func (in *interner) tlsParams(t *probe.TLSInfo) (sql.NullInt64, error) {
	if t == nil {
		return sql.NullInt64{}, nil
	}
	k := tlsKey{version: t.Version, cipher: t.Cipher, group: t.Group, variant: t.Variant, verified: t.Verified}
	if id, ok := in.local.tls[k]; ok {
		return sql.NullInt64{Int64: id, Valid: true}, nil
	}
	in.c.mu.Lock()
	id, ok := in.c.tls[k]
	in.c.mu.Unlock()
	if !ok {
		err := in.tx.QueryRowContext(in.ctx, `
			INSERT INTO tls_params (version, cipher, grp, variant, verified) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (version, cipher, grp, variant, verified) DO UPDATE SET version = excluded.version RETURNING id`,
			k.version, k.cipher, k.group, k.variant, k.verified).Scan(&id)
		if err != nil {
			return sql.NullInt64{}, fmt.Errorf("tls parameters: %w", err)
		}
		in.c.addPending(func() { in.c.tls[k] = id; in.c.tlsBy[id] = k })
	}
	in.local.tls[k] = id
	return sql.NullInt64{Int64: id, Valid: true}, nil
}

// certChain returns the id of the interned chain, NULL for none.
func (in *interner) certChain(t *probe.TLSInfo) (sql.NullInt64, error) {
	if t == nil || len(t.PeerCertificates) == 0 {
		return sql.NullInt64{}, nil
	}
	// Results of one batch often share the chain's backing array.
	same := chainRef{&t.PeerCertificates[0], len(t.PeerCertificates)}
	if id, ok := in.local.chainRefs[same]; ok {
		return sql.NullInt64{Int64: id, Valid: true}, nil
	}
	h := chainHash(t.PeerCertificates)
	if id, ok := in.local.certs[h]; ok {
		in.local.chainRefs[same] = id
		return sql.NullInt64{Int64: id, Valid: true}, nil
	}
	in.c.mu.Lock()
	id, ok := in.c.certs[h]
	in.c.mu.Unlock()
	if !ok {
		b, err := json.Marshal(t.PeerCertificates)
		if err != nil {
			return sql.NullInt64{}, fmt.Errorf("certificate chain: %w", err)
		}
		err = in.tx.QueryRowContext(in.ctx, `
			INSERT INTO cert_chains (hash, chain) VALUES (?, ?)
			ON CONFLICT (hash) DO UPDATE SET hash = excluded.hash RETURNING id`,
			h[:], string(b)).Scan(&id)
		if err != nil {
			return sql.NullInt64{}, fmt.Errorf("certificate chain: %w", err)
		}
		in.c.addPending(func() { in.c.certs[h] = id })
	}
	in.local.certs[h] = id
	in.local.chainRefs[same] = id
	return sql.NullInt64{Int64: id, Valid: true}, nil
}

// chainRef identifies a chain slice by its backing array, within one
// transaction (the caller does not change results while storing them).
type chainRef struct {
	first *probe.Certificate
	n     int
}

// chainHash is the SHA-256 of every field of a chain, length-prefixed.
func chainHash(chain []probe.Certificate) [32]byte {
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	buf = binary.AppendUvarint(buf, uint64(len(chain)))
	for _, c := range chain {
		str(c.Subject)
		str(c.Issuer)
		buf = binary.AppendUvarint(buf, uint64(len(c.SANs)))
		for _, san := range c.SANs {
			str(san)
		}
		buf = binary.AppendVarint(buf, c.NotAfter.UnixNano())
		str(c.NotAfter.Location().String())
		buf = binary.AppendVarint(buf, int64(c.DaysLeft))
	}
	h.Write(buf)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// lookups resolve ids back to values for readers, filling the cache from
// the database on a miss.

func (s *Store) relayName(ctx context.Context, q querier, id int64) (string, error) {
	s.cache.mu.Lock()
	n, ok := s.cache.relayBy[id]
	s.cache.mu.Unlock()
	if ok {
		return n, nil
	}
	if err := q.QueryRowContext(ctx, `SELECT name FROM relays WHERE id = ?`, id).Scan(&n); err != nil {
		return "", fmt.Errorf("relay id %d: %w", id, err)
	}
	// Relay names never change for an id, so caching is safe even while
	// a writer is in flight.
	s.cache.mu.Lock()
	s.cache.relayBy[id] = n
	s.cache.mu.Unlock()
	return n, nil
}

// relayID returns the id of a relay by name, or ErrNotFound.
func (s *Store) relayID(ctx context.Context, q querier, name string) (int64, error) {
	s.cache.mu.Lock()
	id, ok := s.cache.relays[name]
	s.cache.mu.Unlock()
	if ok {
		return id, nil
	}
	err := q.QueryRowContext(ctx, `SELECT id FROM relays WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: relay %q (is it in the configuration?)", ErrNotFound, name)
	}
	if err != nil {
		return 0, err
	}
	return id, nil
}

func (s *Store) pathByID(ctx context.Context, q querier, id int64) (pathInfo, error) {
	s.cache.mu.Lock()
	p, ok := s.cache.pathBy[id]
	s.cache.mu.Unlock()
	if ok {
		return p, nil
	}
	var pref int64
	err := q.QueryRowContext(ctx, `
		SELECT p.relay_id, m.name, p.mx_id, p.preference, p.ip, p.port, p.source_ip, p.servername
		FROM paths p JOIN mx_hosts m ON m.id = p.mx_id WHERE p.id = ?`, id).
		Scan(&p.key.relayID, &p.key.mx, &p.mxID, &pref, &p.key.ip, &p.key.port, &p.key.sourceIP, &p.key.serverName)
	if err != nil {
		return pathInfo{}, fmt.Errorf("path id %d: %w", id, err)
	}
	p.key.preference = uint16(pref)
	s.cache.mu.Lock()
	s.cache.pathBy[id] = p
	s.cache.mu.Unlock()
	return p, nil
}

func (s *Store) tlsByID(ctx context.Context, q querier, id int64) (tlsKey, error) {
	s.cache.mu.Lock()
	k, ok := s.cache.tlsBy[id]
	s.cache.mu.Unlock()
	if ok {
		return k, nil
	}
	err := q.QueryRowContext(ctx, `SELECT version, cipher, grp, variant, verified FROM tls_params WHERE id = ?`, id).
		Scan(&k.version, &k.cipher, &k.group, &k.variant, &k.verified)
	if err != nil {
		return tlsKey{}, fmt.Errorf("tls parameters id %d: %w", id, err)
	}
	s.cache.mu.Lock()
	s.cache.tlsBy[id] = k
	s.cache.mu.Unlock()
	return k, nil
}

func (s *Store) certsByID(ctx context.Context, q querier, id int64) ([]probe.Certificate, error) {
	s.cache.mu.Lock()
	c, ok := s.cache.certBy[id]
	s.cache.mu.Unlock()
	if ok {
		return c, nil
	}
	var b string
	if err := q.QueryRowContext(ctx, `SELECT chain FROM cert_chains WHERE id = ?`, id).Scan(&b); err != nil {
		return nil, fmt.Errorf("certificate chain id %d: %w", id, err)
	}
	if err := json.Unmarshal([]byte(b), &c); err != nil {
		return nil, fmt.Errorf("certificate chain id %d: %w", id, err)
	}
	s.cache.mu.Lock()
	s.cache.certBy[id] = c
	s.cache.mu.Unlock()
	return c, nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
