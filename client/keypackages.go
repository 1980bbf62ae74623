package client

import (
	"context"
	"fmt"

	"candor/api"
)

// topUp keeps the device's stock of KeyPackages in the server's directory:
// when fewer than keyPackageLow one-time KeyPackages are left, it uploads
// enough to make keyPackageBatch, and it uploads a last-resort KeyPackage
// when the directory has none. Others claim this device's KeyPackages to
// add it to groups, so it is called after each Welcome and each Sync.
func (c *Client) topUp(ctx context.Context) error {
	c.topUpMu.Lock()
	defer c.topUpMu.Unlock()
	var count api.KeyPackageCount
	if err := c.tr.call(ctx, "GET", api.PathKeyPackages, nil, &count); err != nil {
		return fmt.Errorf("counting key packages: %w", err)
	}
	var up api.UploadKeyPackages
	if count.Available < keyPackageLow {
		n := min(keyPackageBatch-count.Available, api.MaxKeyPackages)
		kps, err := c.dev.KeyPackages(ctx, n)
		if err != nil {
			return err
		}
		up.KeyPackages = kps
	}
	if !count.LastResort {
		lr, err := c.dev.LastResortKeyPackage(ctx)
		if err != nil {
			return err
		}
		up.LastResort = lr
	}
	if len(up.KeyPackages) == 0 && up.LastResort == nil {
		return nil
	}
	if up.KeyPackages == nil {
		up.KeyPackages = [][]byte{}
	}
	var after api.KeyPackageCount
	if err := c.tr.call(ctx, "POST", api.PathKeyPackages, up, &after); err != nil {
		return fmt.Errorf("uploading key packages: %w", err)
	}
	c.log.Debug("key packages uploaded", keyCount, len(up.KeyPackages))
	return nil
}
