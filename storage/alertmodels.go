package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// SetAlertModel stores the model of incident id's alert (JSON, written
// and read by the alerts package; storage only checks that it is JSON),
// replacing the one stored before. An unknown incident is ErrNotFound.
func (s *Store) SetAlertModel(ctx context.Context, incidentID int64, model []byte) error {
	if !json.Valid(model) {
		return fmt.Errorf("storage: store the alert model of incident %d: not JSON", incidentID)
	}
	return s.write(ctx, "store alert model", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO alert_models (incident_id, model, updated_at)
			SELECT id, ?, ? FROM incidents WHERE id = ?
			ON CONFLICT (incident_id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at`,
			string(model), ms(s.now()), incidentID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: incident %d", ErrNotFound, incidentID)
		}
		return nil
	})
}

// AlertModel returns the model stored for incident id's alert; found is
// false when there is none (no alert yet, or its model was removed with
// the incident's other history by retention).
func (s *Store) AlertModel(ctx context.Context, incidentID int64) (model []byte, found bool, err error) {
	err = s.read(ctx, "read alert model", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT model FROM alert_models WHERE incident_id = ?`, incidentID).Scan(&model)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	return model, found, err
}
