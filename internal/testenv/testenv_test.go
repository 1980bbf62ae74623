package testenv_test

import (
	"testing"

	"candor/internal/testenv"
)

func TestEnv(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	c := env.Enrol(t, "alice", "laptop")
	if c.User() != "alice" || c.Device() == "" || c.Server() != env.Addr {
		t.Errorf("enrolled %s/%s at %s, want alice at %s", c.User(), c.Device(), c.Server(), env.Addr)
	}
	env.DropConnections()
	if err := c.Sync(t.Context()); err != nil {
		t.Errorf("sync after dropping connections: %v", err)
	}
}
