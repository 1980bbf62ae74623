package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"candor"
	"candor/internal/store"
)

// AddKeyPackages adds one-time KeyPackages to a device's stock and, when
// lastResort is non-nil, replaces its last-resort one; see [store.Store].
// The Device and LastResort fields of the KeyPackages are ignored: the
// device is device, and which kind each is follows from where it is passed.
// The replaced last-resort KeyPackage is remembered, like a claimed one, so
// Welcomes to it are still routed. An unknown device is ErrNotFound, a
// revoked one ErrPermission.
func (s *Store) AddKeyPackages(ctx context.Context, device candor.DeviceID, kps []store.KeyPackage, lastResort *store.KeyPackage) error {
	if err := s.addKeyPackages(ctx, device, kps, lastResort); err != nil {
		return fmt.Errorf("sqlstore: adding KeyPackages of device %s: %w", device, err)
	}
	return nil
}

func (s *Store) addKeyPackages(ctx context.Context, device candor.DeviceID, kps []store.KeyPackage, lastResort *store.KeyPackage) error {
	type row struct {
		kp         *store.KeyPackage
		added      int64
		lastResort bool
	}
	rows := make([]row, 0, len(kps)+1)
	for i := range kps {
		rows = append(rows, row{kp: &kps[i]})
	}
	if lastResort != nil {
		rows = append(rows, row{kp: lastResort, lastResort: true})
	}
	for i := range rows {
		if len(rows[i].kp.Ref) == 0 || len(rows[i].kp.Data) == 0 {
			return fmt.Errorf("KeyPackage without a ref or data: %w", candor.ErrInvalid)
		}
		var err error
		if rows[i].added, err = nanos("KeyPackage time", rows[i].kp.Added); err != nil {
			return err
		}
	}
	return s.write(ctx, func(ctx context.Context, c conn) error {
		if err := usableDevice(ctx, c, device); err != nil {
			return err
		}
		for _, r := range rows {
			if r.lastResort {
				// Retire the last-resort KeyPackage this one replaces.
				if _, err := c.exec(ctx, `
					UPDATE key_packages SET claimed_at = ?
					WHERE device_id = ? AND last_resort = 1 AND claimed_at IS NULL`,
					r.added, string(device)); err != nil {
					return err
				}
			}
			n, err := affected(c.exec(ctx, `
				INSERT INTO key_packages (ref, device_id, data, last_resort, added)
				VALUES (?, ?, ?, ?, ?)
				ON CONFLICT DO NOTHING`,
				r.kp.Ref, string(device), r.kp.Data, flag(r.lastResort), r.added))
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("KeyPackage %x already stored: %w", r.kp.Ref, candor.ErrConflict)
			}
		}
		return nil
	})
}

// CountKeyPackages says how many unclaimed one-time KeyPackages a device
// has, and whether it has a last-resort one. An unknown device is
// ErrNotFound.
func (s *Store) CountKeyPackages(ctx context.Context, device candor.DeviceID) (available int, lastResort bool, err error) {
	err = s.read(ctx, func(c conn) error {
		if err := deviceExists(ctx, c, device); err != nil {
			return err
		}
		var last int
		if err := c.queryRow(ctx, `
			SELECT COUNT(CASE WHEN last_resort = 0 THEN 1 END),
			       COUNT(CASE WHEN last_resort = 1 THEN 1 END)
			FROM key_packages WHERE device_id = ? AND claimed_at IS NULL`,
			string(device)).Scan(&available, &last); err != nil {
			return err
		}
		lastResort = last > 0 // a partial unique index allows one at most
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("sqlstore: counting KeyPackages of device %s: %w", device, err)
	}
	return available, lastResort, nil
}

// ClaimKeyPackages takes one KeyPackage for each unrevoked device of user,
// in enrolment order; see [store.Store]. An unknown user has no devices:
// the list is empty.
func (s *Store) ClaimKeyPackages(ctx context.Context, user candor.UserID, now time.Time) ([]store.KeyPackage, error) {
	var out []store.KeyPackage
	err := func() error {
		claimed, err := nanos("claim time", now)
		if err != nil {
			return err
		}
		return s.write(ctx, func(ctx context.Context, c conn) error {
			out = make([]store.KeyPackage, 0)
			devices, err := scanList(ctx, c, func(r *sql.Rows) (id string, err error) {
				return id, r.Scan(&id)
			}, `SELECT id FROM devices WHERE user_id = ? AND revoked_at IS NULL ORDER BY serial`, string(user))
			if err != nil {
				return err
			}
			for _, id := range devices {
				kp, ok, err := claimOne(ctx, c, candor.DeviceID(id), claimed)
				if err != nil {
					return err
				}
				if ok {
					out = append(out, kp)
				}
			}
			return nil
		})
	}()
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claiming KeyPackages of %s: %w", user, err)
	}
	return out, nil
}

// claimOne claims a device's oldest unclaimed one-time KeyPackage, or else
// returns its last-resort one; ok is false if it has neither.
func claimOne(ctx context.Context, c conn, device candor.DeviceID, claimed int64) (kp store.KeyPackage, ok bool, err error) {
	kp.Device = device
	var added int64
	// One statement picks and marks the row. The outer condition on
	// claimed_at re-checks the row once it is locked, and the dialect's
	// skipLocked makes the inner SELECT pass over rows another transaction
	// is claiming (PostgreSQL); SQLite's one writer needs neither. So no
	// two claims hand out one KeyPackage.
	err = c.queryRow(ctx, `
		UPDATE key_packages SET claimed_at = ?
		WHERE serial = (
			SELECT serial FROM key_packages
			WHERE device_id = ? AND last_resort = 0 AND claimed_at IS NULL
			ORDER BY serial LIMIT 1 `+c.d.skipLocked+`
		) AND claimed_at IS NULL
		RETURNING ref, data, added`,
		claimed, string(device)).Scan(&kp.Ref, &kp.Data, &added)
	if errors.Is(err, sql.ErrNoRows) {
		kp.LastResort = true
		err = c.queryRow(ctx, `
			SELECT ref, data, added FROM key_packages
			WHERE device_id = ? AND last_resort = 1 AND claimed_at IS NULL`,
			string(device)).Scan(&kp.Ref, &kp.Data, &added)
		if errors.Is(err, sql.ErrNoRows) {
			return store.KeyPackage{}, false, nil
		}
	}
	if err != nil {
		return store.KeyPackage{}, false, fmt.Errorf("device %s: %w", device, err)
	}
	kp.Added = timeOf(added)
	return kp, true, nil
}

// KeyPackageOwner returns the device a KeyPackageRef belongs to, claimed
// or not, and last-resort KeyPackages since replaced.
func (s *Store) KeyPackageOwner(ctx context.Context, ref []byte) (candor.DeviceID, error) {
	var device string
	err := s.db(s.rs).queryRow(ctx, `SELECT device_id FROM key_packages WHERE ref = ?`, blob(ref)).Scan(&device)
	if err != nil {
		return "", fmt.Errorf("sqlstore: KeyPackage %x: %w", ref, noRow(err))
	}
	return candor.DeviceID(device), nil
}
