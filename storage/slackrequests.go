package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SeenKey is one entry of the replay memory of Slack's HTTP mode: the
// digest of something a signed request carried (its signature, its body)
// and the time after which it may be forgotten.
type SeenKey struct {
	Digest  []byte
	Expires time.Time
}

// maxDigestBytes bounds a SeenKey's digest (a SHA-256 is 32 bytes).
const maxDigestBytes = 64

// RememberSlackRequest records keys in one transaction and reports, key by
// key, whether each was recorded already and had not expired at now: the
// bot refuses a request whose signature was seen. A key seen again keeps
// the later of its two expiry times. Keys expired at now are deleted in
// the same transaction, so the table never holds more than the requests
// of the retention the bot chose.
func (s *Store) RememberSlackRequest(ctx context.Context, now time.Time, keys ...SeenKey) (seen []bool, err error) {
	for _, k := range keys {
		if len(k.Digest) == 0 || len(k.Digest) > maxDigestBytes {
			return nil, fmt.Errorf("storage: remember a Slack request: a digest of %d bytes (want 1 to %d)", len(k.Digest), maxDigestBytes)
		}
	}
	seen = make([]bool, len(keys))
	err = s.write(ctx, "remember Slack request", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM slack_requests WHERE expires_at <= ?`, ms(now)); err != nil {
			return err
		}
		for i, k := range keys {
			var expires int64
			err := tx.QueryRowContext(ctx, `SELECT expires_at FROM slack_requests WHERE digest = ?`, k.Digest).Scan(&expires)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			default:
				seen[i] = true
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO slack_requests (digest, expires_at) VALUES (?, ?)
				ON CONFLICT (digest) DO UPDATE SET expires_at = CASE WHEN excluded.expires_at > slack_requests.expires_at
					THEN excluded.expires_at ELSE slack_requests.expires_at END`,
				k.Digest, ms(k.Expires)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seen, nil
}
