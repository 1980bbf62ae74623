package client

import "bytes"

// StorageSecrets returns what must never be found in a profile folder
// outside its key file: the storage key, and the scalar of the device's
// private key.
func StorageSecrets(c *Client) (storageKey, deviceScalar []byte, err error) {
	scalar, err := c.id.key.Bytes()
	return bytes.Clone(c.id.storage[:]), scalar, err
}
