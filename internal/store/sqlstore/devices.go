package sqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"candor"
	"candor/internal/store"
)

// CreateInvitation stores a new invitation. ErrConflict if the id exists.
func (s *Store) CreateInvitation(ctx context.Context, inv store.Invitation) error {
	if err := s.createInvitation(ctx, inv); err != nil {
		return fmt.Errorf("sqlstore: creating invitation %s: %w", inv.ID, err)
	}
	return nil
}

func (s *Store) createInvitation(ctx context.Context, inv store.Invitation) error {
	if inv.ID == "" {
		return fmt.Errorf("empty id: %w", candor.ErrInvalid)
	}
	created, err := nanos("created", inv.Created)
	if err != nil {
		return err
	}
	expires, err := nanos("expires", inv.Expires)
	if err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, c conn) error {
		n, err := affected(c.exec(ctx, `
			INSERT INTO invitations (id, user_id, secret_hash, created, expires, used)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
			inv.ID, string(inv.User), blob(inv.SecretHash), created, expires, flag(inv.Used)))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("id taken: %w", candor.ErrConflict)
		}
		return nil
	})
}

// Invitation returns an invitation, used or not.
func (s *Store) Invitation(ctx context.Context, id string) (store.Invitation, error) {
	inv := store.Invitation{ID: id}
	var (
		user             string
		created, expires int64
		used             bool
	)
	err := s.db(s.rs).queryRow(ctx, `
		SELECT user_id, secret_hash, created, expires, used
		FROM invitations WHERE id = ?`, id).
		Scan(&user, &inv.SecretHash, &created, &expires, &used)
	if err != nil {
		return store.Invitation{}, fmt.Errorf("sqlstore: loading invitation %s: %w", id, noRow(err))
	}
	inv.User = candor.UserID(user)
	inv.SecretHash = blob(inv.SecretHash)
	inv.Created, inv.Expires, inv.Used = timeOf(created), timeOf(expires), used
	return inv, nil
}

// Enrol marks invitation id used and adds d, in one transaction; see
// [store.Store]. A refusal says why, for the server's log; the server
// decides what the device is told.
func (s *Store) Enrol(ctx context.Context, id string, secretHash []byte, now time.Time, d store.Device) error {
	if err := s.enrol(ctx, id, secretHash, now, d); err != nil {
		return fmt.Errorf("sqlstore: enrolling device %s with invitation %s: %w", d.ID, id, err)
	}
	return nil
}

func (s *Store) enrol(ctx context.Context, id string, secretHash []byte, now time.Time, d store.Device) error {
	if d.ID == "" || d.User == "" {
		return fmt.Errorf("device without an id or a user: %w", candor.ErrInvalid)
	}
	if fp := sha256.Sum256(d.Certificate); !bytes.Equal(d.Fingerprint, fp[:]) {
		return fmt.Errorf("fingerprint is not the certificate's SHA-256: %w", candor.ErrInvalid)
	}
	if d.Revoked() {
		return fmt.Errorf("a new device cannot be revoked: %w", candor.ErrInvalid)
	}
	enrolled, err := nanos("enrolment time", d.EnrolledAt)
	if err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, c conn) error {
		// Load the row and judge it here: the secret hash is compared in
		// constant time, and first, so that without the secret nothing is
		// learnt about the invitation.
		var (
			user    string
			hash    []byte
			expires int64
			used    bool
		)
		err := c.queryRow(ctx, `
			SELECT user_id, secret_hash, expires, used
			FROM invitations WHERE id = ?`, id).
			Scan(&user, &hash, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no such invitation: %w", candor.ErrPermission)
		}
		if err != nil {
			return err
		}
		switch {
		case subtle.ConstantTimeCompare(hash, secretHash) != 1:
			return fmt.Errorf("wrong secret: %w", candor.ErrPermission)
		case used:
			return fmt.Errorf("invitation already used: %w", candor.ErrPermission)
		case !now.Before(timeOf(expires)):
			return fmt.Errorf("invitation expired at %v: %w", timeOf(expires), candor.ErrPermission)
		case user != string(d.User):
			return fmt.Errorf("invitation is for user %q, not %q: %w", user, d.User, candor.ErrPermission)
		}
		// The condition on used makes the claim of the invitation safe
		// where transactions run side by side (PostgreSQL): the second
		// UPDATE waits for the first and then matches nothing.
		n, err := affected(c.exec(ctx, `UPDATE invitations SET used = 1 WHERE id = ? AND used = 0`, id))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("invitation already used: %w", candor.ErrPermission)
		}
		n, err = affected(c.exec(ctx, `
			INSERT INTO devices (id, user_id, name, certificate, fingerprint, enrolled_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
			string(d.ID), string(d.User), d.Name, blob(d.Certificate), blob(d.Fingerprint), enrolled))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("device id or certificate already enrolled: %w", candor.ErrConflict)
		}
		return nil
	})
}

// deviceColumns are the columns scanDevice reads, in its order.
const deviceColumns = `id, user_id, name, certificate, fingerprint, enrolled_at, revoked_at`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(row scanner) (store.Device, error) {
	var (
		d        store.Device
		id, user string
		enrolled int64
		revoked  sql.NullInt64
	)
	if err := row.Scan(&id, &user, &d.Name, &d.Certificate, &d.Fingerprint, &enrolled, &revoked); err != nil {
		return store.Device{}, err
	}
	d.ID, d.User = candor.DeviceID(id), candor.UserID(user)
	d.Certificate, d.Fingerprint = blob(d.Certificate), blob(d.Fingerprint)
	d.EnrolledAt, d.RevokedAt = timeOf(enrolled), nullTimeOf(revoked)
	return d, nil
}

// Device returns a device by id.
func (s *Store) Device(ctx context.Context, id candor.DeviceID) (store.Device, error) {
	d, err := scanDevice(s.db(s.rs).queryRow(ctx, `
		SELECT `+deviceColumns+` FROM devices WHERE id = ?`, string(id)))
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlstore: loading device %s: %w", id, noRow(err))
	}
	return d, nil
}

// DeviceByFingerprint returns the device whose certificate has this
// SHA-256 fingerprint.
func (s *Store) DeviceByFingerprint(ctx context.Context, fingerprint []byte) (store.Device, error) {
	d, err := scanDevice(s.db(s.rs).queryRow(ctx, `
		SELECT `+deviceColumns+` FROM devices WHERE fingerprint = ?`, blob(fingerprint)))
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlstore: loading device by fingerprint %x: %w", fingerprint, noRow(err))
	}
	return d, nil
}

// Devices returns a user's devices, revoked ones included, in enrolment
// order; an unknown user has none.
func (s *Store) Devices(ctx context.Context, user candor.UserID) ([]store.Device, error) {
	ds, err := scanList(ctx, s.db(s.rs), func(r *sql.Rows) (store.Device, error) { return scanDevice(r) }, `
		SELECT `+deviceColumns+` FROM devices WHERE user_id = ? ORDER BY serial`, string(user))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading the devices of %s: %w", user, err)
	}
	return ds, nil
}

// RevokedSince returns the devices revoked at or after since. It reads
// every device row: the server asks about twice a minute, and a table of
// tens of thousands of devices is scanned in milliseconds.
func (s *Store) RevokedSince(ctx context.Context, since time.Time) ([]candor.DeviceID, error) {
	ns, err := nanos("since", since)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing revoked devices: %w", err)
	}
	ids, err := scanList(ctx, s.db(s.rs), func(r *sql.Rows) (id candor.DeviceID, err error) {
		return id, r.Scan(&id)
	}, `SELECT id FROM devices WHERE revoked_at >= ?`, ns)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing the devices revoked since %v: %w", since, err)
	}
	return ids, nil
}

// RevokeDevice marks a device revoked at at, unless it already is, and
// deletes its KeyPackages, claimed ones included: nothing is routed to a
// revoked device any more.
func (s *Store) RevokeDevice(ctx context.Context, id candor.DeviceID, at time.Time) error {
	err := func() error {
		revoked, err := nanos("revocation time", at)
		if err != nil {
			return err
		}
		return s.write(ctx, func(ctx context.Context, c conn) error {
			n, err := affected(c.exec(ctx, `
				UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
				revoked, string(id)))
			if err != nil {
				return err
			}
			if n == 0 {
				// Revoked already (no error), or unknown.
				if err := deviceExists(ctx, c, id); err != nil {
					return err
				}
			}
			_, err = c.exec(ctx, `DELETE FROM key_packages WHERE device_id = ?`, string(id))
			return err
		})
	}()
	if err != nil {
		return fmt.Errorf("sqlstore: revoking device %s: %w", id, err)
	}
	return nil
}

// usableDevice checks, in a transaction, that a device is enrolled
// (else ErrNotFound) and not revoked (else ErrPermission).
func usableDevice(ctx context.Context, c conn, id candor.DeviceID) error {
	var revoked sql.NullInt64
	err := c.queryRow(ctx, `SELECT revoked_at FROM devices WHERE id = ?`, string(id)).Scan(&revoked)
	if err != nil {
		return fmt.Errorf("device %s: %w", id, noRow(err))
	}
	if revoked.Valid {
		return fmt.Errorf("device %s is revoked: %w", id, candor.ErrPermission)
	}
	return nil
}

// deviceExists checks that a device is enrolled, revoked or not (else
// ErrNotFound).
func deviceExists(ctx context.Context, c conn, id candor.DeviceID) error {
	var one int
	if err := c.queryRow(ctx, `SELECT 1 FROM devices WHERE id = ?`, string(id)).Scan(&one); err != nil {
		return fmt.Errorf("device %s: %w", id, noRow(err))
	}
	return nil
}
