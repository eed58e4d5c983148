package store

import (
	"context"
	"fmt"
)

// SetCustomerEmail records the address Stripe reports for the job's
// customer, so that nothing else has to carry it: the webhook writes it
// before it signals the workflow, and activities that learn it from Stripe
// write it themselves. An empty address, or one already recorded, writes
// nothing; an unknown job is not an error (the webhook ignores its event).
func (s *Store) SetCustomerEmail(ctx context.Context, id, email string) error {
	if email == "" {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET customer_email = $2, updated_at = now()
		WHERE id = $1 AND customer_email IS DISTINCT FROM $2`, id, email)
	if err != nil {
		return fmt.Errorf("store: set customer email of %s: %w", id, err)
	}
	return nil
}
