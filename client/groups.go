package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"candor"
	"candor/api"
	"candor/internal/devstore"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// groupIDBytes is the size of the random group ids candor makes.
const groupIDBytes = 16

// CreateGroup starts a conversation named name (kept on this device only:
// the name is never sent) with the given people: every device of each, and
// this person's own other devices. It returns the new group's id. If the
// group was created but adding people failed, it returns the id with the
// error, and AddUsers can be tried again.
func (c *Client) CreateGroup(ctx context.Context, name string, users ...candor.UserID) (candor.GroupID, error) {
	// The archive joins with the first commit: a group that could not
	// get it is not made at all.
	if _, err := c.archive(ctx); err != nil {
		return "", err
	}
	senders := c.externalSenders()
	var gid candor.GroupID
	for tries := 0; ; tries++ {
		raw := make([]byte, groupIDBytes)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		gid = candor.GroupID(raw)
		err := c.createGroup(ctx, gid, name, senders)
		if err == nil {
			break
		}
		if !errors.Is(err, errGroupExists) || tries >= 2 {
			return "", fmt.Errorf("creating a conversation: %w", err)
		}
	}
	c.log.Info("group created", keyGroup, gid.String())
	others := slices.DeleteFunc(slices.Clone(users), func(u candor.UserID) bool { return u == c.me.User })
	if err := c.AddUsers(ctx, gid, append(others, c.me.User)...); err != nil {
		return gid, fmt.Errorf("the conversation was created, but adding people failed: %w", err)
	}
	return gid, nil
}

func (c *Client) createGroup(ctx context.Context, gid candor.GroupID, name string, senders []mlsx.ExternalSender) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	g, err := c.dev.CreateGroup(ctx, gid, mlsx.GroupOptions{ExternalSenders: senders})
	if err != nil {
		return err
	}
	var head api.GroupHead
	if err := c.tr.call(ctx, "POST", api.PathGroups, api.CreateGroup{GroupID: []byte(gid)}, &head); err != nil {
		return errors.Join(err, c.store.DeleteGroup(ctx, gid))
	}
	if err := c.store.AddConversation(ctx, devstore.Conversation{Group: gid, Name: name, Cursor: head.Head, Created: c.now()}); err != nil {
		return err
	}
	c.cacheGroup(g)
	return nil
}

// Rename changes a conversation's name on this device.
func (c *Client) Rename(ctx context.Context, gid candor.GroupID, name string) error {
	return c.store.SetConversationName(ctx, gid, name)
}

// candidate is a claimed KeyPackage of a device to add.
type candidate struct {
	device     candor.DeviceID
	keyPackage []byte
}

// AddUsers adds every device of each person to a conversation, in one
// commit. Devices already in it are left as they are; for this device's
// own person, its other devices are added.
func (c *Client) AddUsers(ctx context.Context, gid candor.GroupID, users ...candor.UserID) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.catchUpLocked(ctx, gid, 0); err != nil {
		return err
	}
	g, err := c.group(ctx, gid)
	if err != nil {
		return err
	}
	arch, err := c.archive(ctx)
	if err != nil {
		return err
	}
	present := presentDevices(g)
	var cands []candidate
	seen := map[candor.UserID]bool{}
	for _, u := range users {
		if seen[u] {
			continue
		}
		seen[u] = true
		got, err := c.claim(ctx, u, present)
		if err != nil {
			return err
		}
		cands = append(cands, got...)
	}
	if len(cands) == 0 && arch.hasArchive(g) {
		return nil
	}
	return c.commitLocked(ctx, gid, func(g *mlsx.Group) (mlsx.CommitOptions, error) {
		// After a lost race the winner may have added some of them.
		present := presentDevices(g)
		var opts mlsx.CommitOptions
		for _, cd := range cands {
			if !present[cd.device] {
				opts.Add = append(opts.Add, cd.keyPackage)
			}
		}
		// A new group's first commit adds the archive: commitLocked
		// does, for every commit into a group without it.
		if len(opts.Add) == 0 {
			return opts, errNothingToDo
		}
		return opts, nil
	})
}

// revokedDevices looks up the devices of a group's members and returns
// those revoked.
func (c *Client) revokedDevices(ctx context.Context, g *mlsx.Group) (map[candor.DeviceID]bool, error) {
	out := map[candor.DeviceID]bool{}
	users := map[candor.UserID]bool{}
	for _, m := range g.Members() {
		users[memberOf(m).User] = true
	}
	for u := range users {
		if u == "" {
			continue
		}
		var devs api.DeviceList
		if err := c.tr.call(ctx, "GET", path(api.PathDevices, "user", string(u)), nil, &devs); err != nil {
			return nil, fmt.Errorf("looking up %s: %w", u, err)
		}
		for _, d := range devs.Devices {
			if d.RevokedAt != nil {
				out[candor.DeviceID(d.ID)] = true
			}
		}
	}
	return out, nil
}

// withRevoked adds to remove the leaves of revoked devices, other than
// this device's own.
func withRevoked(g *mlsx.Group, remove []uint32, revoked map[candor.DeviceID]bool) []uint32 {
	own := g.OwnLeaf()
	for _, m := range g.Members() {
		if revoked[memberOf(m).Device] && m.Leaf != own && !slices.Contains(remove, m.Leaf) {
			remove = append(remove, m.Leaf)
		}
	}
	return remove
}

// errNothingToDo ends a commit loop whose change another member made.
var errNothingToDo = errors.New("nothing to commit")

// nothingElse is the plan of a commit that only carries what commitLocked
// adds on its own: pending proposals, and the archive if it is out.
func nothingElse(*mlsx.Group) (mlsx.CommitOptions, error) {
	return mlsx.CommitOptions{}, errNothingToDo
}

func presentDevices(g *mlsx.Group) map[candor.DeviceID]bool {
	out := map[candor.DeviceID]bool{}
	for _, m := range g.Members() {
		if mm := memberOf(m); mm.Device != "" {
			out[mm.Device] = true
		}
	}
	return out
}

// claim takes one KeyPackage for each device of user not in present (and
// not this device), checking that each is a device certificate under the
// CA naming the device the server says it is for.
func (c *Client) claim(ctx context.Context, user candor.UserID, present map[candor.DeviceID]bool) ([]candidate, error) {
	var devs api.DeviceList
	if err := c.tr.call(ctx, "GET", path(api.PathDevices, "user", string(user)), nil, &devs); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", user, err)
	}
	active, missing := 0, 0
	for _, d := range devs.Devices {
		if d.RevokedAt != nil {
			continue
		}
		active++
		if dev := candor.DeviceID(d.ID); !present[dev] && dev != c.me.Device {
			missing++
		}
	}
	if user != c.me.User && active == 0 {
		return nil, fmt.Errorf("%s has no enrolled device: %w", user, ErrNoKeys)
	}
	if missing == 0 {
		return nil, nil
	}
	var claimed api.ClaimedKeyPackages
	if err := c.tr.call(ctx, "POST", path(api.PathClaim, "user", string(user)), nil, &claimed); err != nil {
		return nil, fmt.Errorf("claiming keys of %s: %w", user, err)
	}
	var out []candidate
	for _, ckp := range claimed.KeyPackages {
		dev := candor.DeviceID(ckp.Device)
		if dev == c.me.Device || present[dev] {
			continue
		}
		info, err := mlsx.ParseKeyPackage(ckp.KeyPackage, c.now())
		if err != nil {
			return nil, fmt.Errorf("a key package of %s/%s: %w", user, dev, err)
		}
		d, err := c.verifyCredential(info.Credential)
		if err != nil {
			return nil, fmt.Errorf("a key package of %s/%s: %w: %v", user, dev, candor.ErrPermission, err)
		}
		if d.User != user || d.Device != dev {
			return nil, fmt.Errorf("the server gave a key package of %s for %s/%s: %w", d, user, dev, ErrServerIdentity)
		}
		out = append(out, candidate{device: dev, keyPackage: ckp.KeyPackage})
	}
	if len(out) == 0 && user != c.me.User {
		return nil, fmt.Errorf("%s: %w", user, ErrNoKeys)
	}
	return out, nil
}

// RemoveUsers removes every device of each person from a conversation, in
// one commit. Naming this device's own person removes its other devices;
// a device cannot remove itself.
func (c *Client) RemoveUsers(ctx context.Context, gid candor.GroupID, users ...candor.UserID) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.catchUpLocked(ctx, gid, 0); err != nil {
		return err
	}
	gone := map[candor.UserID]bool{}
	for _, u := range users {
		if u == pki.ArchiveName {
			return ErrArchiveStays
		}
		gone[u] = true
	}
	leaves := func(g *mlsx.Group) []uint32 {
		var out []uint32
		own := g.OwnLeaf()
		for _, m := range g.Members() {
			if mm := memberOf(m); gone[mm.User] && m.Leaf != own && !mm.Archive {
				out = append(out, m.Leaf)
			}
		}
		return out
	}
	g, err := c.group(ctx, gid)
	if err != nil {
		return err
	}
	if len(leaves(g)) == 0 {
		return ErrNotMemberUser
	}
	return c.commitLocked(ctx, gid, func(g *mlsx.Group) (mlsx.CommitOptions, error) {
		l := leaves(g)
		if len(l) == 0 {
			return mlsx.CommitOptions{}, errNothingToDo
		}
		return mlsx.CommitOptions{Remove: l}, nil
	})
}

// commitLocked makes, sends and adopts one commit whose content plan
// decides from the group's current state; the caller holds the group's
// lock. When another member's commit wins the epoch it drops its own,
// catches up and tries again, a few times.
//
// Every commit into a group without the current archive adds it, with
// the KeyPackage this device pinned rather than one the server hands out:
// a new group's first commit, the second half of a replay anchor, and the
// first commit after the organisation moved to a new archive key, which
// also removes the previous key's leaf (the keys differ, so one commit
// can do both; the archive is fetched again first, since that move shows
// there). A
// commit that takes the server's proposal to remove the archive (the
// first half; the library cannot remove and add one signature key in one
// commit) is followed at once by one that adds it back, so the group is
// without it only between the two.
//
// When the server refuses the commit by policy because it keeps a revoked
// device (whose removal the server proposed, in a group whose members
// cannot read the server's proposals), it looks the members' devices up
// and tries once more with the revoked ones removed.
func (c *Client) commitLocked(ctx context.Context, gid candor.GroupID, plan func(*mlsx.Group) (mlsx.CommitOptions, error)) error {
	arch, err := c.freshArchive(ctx)
	if err != nil {
		return err
	}
	var revoked map[candor.DeviceID]bool
	for range maxAttempts {
		g, err := c.group(ctx, gid)
		if err != nil {
			return err
		}
		opts, err := plan(g)
		if err != nil && !errors.Is(err, errNothingToDo) {
			return err
		}
		missing := !arch.hasArchive(g)
		if missing {
			opts.Add = append(opts.Add, arch.keyPackage)
		}
		// A previous archive key leaves as the current one joins: the
		// server's proposal may already remove it, and the library
		// refuses a second removal of the same leaf.
		proposed := g.ProposedRemovals()
		for _, leaf := range arch.replaced(g) {
			if !slices.Contains(proposed, leaf) && !slices.Contains(opts.Remove, leaf) {
				opts.Remove = append(opts.Remove, leaf)
			}
		}
		if errors.Is(err, errNothingToDo) && !missing && revoked == nil {
			return nil
		}
		if revoked != nil {
			opts.Remove = withRevoked(g, opts.Remove, revoked)
		}
		cm, err := g.Commit(ctx, opts)
		if err != nil {
			return fmt.Errorf("committing to %s: %w", gid, err)
		}
		seq, at, err := c.post(ctx, gid, api.SendRequest{Message: cm.Message, Welcome: cm.Welcome})
		if err == nil {
			if err := c.adoptCommit(ctx, g, gid, seq, at, cm.Message); err != nil {
				return err
			}
			if g, err = c.group(ctx, gid); err != nil {
				return err
			}
			if arch.hasArchive(g) {
				return nil
			}
			// The commit took the server's proposal to remove the
			// archive: the next one adds it back.
			c.log.Debug("adding the archive back for a replay anchor", keyGroup, gid.String())
			plan, revoked = nothingElse, nil
			continue
		}
		// Refused, or lost: either way the group goes back to its durable
		// state. A commit that did land is still recognised in the log,
		// since its pending state stays stored until the next epoch.
		if derr := g.Discard(ctx); derr != nil {
			return errors.Join(err, derr)
		}
		if errors.Is(err, ErrRemoved) || errors.Is(err, ErrUnknownGroup) {
			return errors.Join(err, c.removedLocked(ctx, gid))
		}
		if errors.Is(err, ErrPolicy) && revoked == nil {
			if revoked, err = c.revokedDevices(ctx, g); err != nil {
				return err
			}
			if len(revoked) == 0 {
				return fmt.Errorf("committing to %s: %w", gid, ErrPolicy)
			}
			c.log.Info("removing revoked devices in the commit", keyGroup, gid.String(), keyCount, len(revoked))
			continue
		}
		if !errors.Is(err, errCommitConflict) && !errors.Is(err, errStaleEpoch) {
			return err
		}
		c.log.Debug("commit lost the epoch; catching up", keyGroup, gid.String())
		if err := c.catchUpLocked(ctx, gid, 0); err != nil {
			return err
		}
	}
	return ErrBusy
}

// adoptCommit makes this device's commit msg, accepted at seq at time at
// (zero when unknown), its group's state. When the cursor is just before
// it, Confirm does; otherwise, or when the journal chain cannot be moved
// along without reading the commit back (see ownProgress), the entries up
// to it are processed from the log, in order, and the commit is adopted
// when its turn comes.
func (c *Client) adoptCommit(ctx context.Context, g *mlsx.Group, gid candor.GroupID, seq uint64, at time.Time, msg []byte) error {
	conv, err := c.conversation(ctx, gid)
	if err != nil {
		return err
	}
	cur := conv.Cursor
	if p, ok := c.ownProgress(conv, seq, at, msg); ok && cur+1 == seq {
		ev, err := g.Confirm(ctx)
		if err != nil {
			return err
		}
		if err := c.store.Advance(ctx, p, c.now()); err != nil {
			return err
		}
		c.ack(ctx, gid, seq)
		if len(ev.Added) > 0 || len(ev.Removed) > 0 {
			c.emit(Event{Kind: EventMembers, Group: gid, Seq: seq, Added: membersOf(ev.Added), Removed: membersOf(ev.Removed)})
		}
		return nil
	}
	if err := c.catchUpLocked(ctx, gid, seq); err != nil {
		return err
	}
	if cur, err = c.cursor(ctx, gid); err != nil {
		return err
	}
	if cur < seq {
		return fmt.Errorf("the log of %s ends before this device's commit at %d: %w", gid, seq, ErrProtocol)
	}
	return nil
}

// post appends one message to a group's log and returns its position and
// the time the log holds it at. A request whose outcome is unknown (the
// connection broke, the server failed) is sent again, identically: if the
// first one landed, the server answers replay with its position, and the
// time is then zero (unknown).
func (c *Client) post(ctx context.Context, gid candor.GroupID, req api.SendRequest) (uint64, time.Time, error) {
	p := path(api.PathMessages, "group", gid.String())
	for try := 0; ; try++ {
		var resp api.SendResponse
		err := c.tr.call(ctx, "POST", p, req, &resp)
		if err == nil {
			return resp.Seq, resp.Time, nil
		}
		if se := serverError(err); se != nil && se.Code == api.CodeReplay {
			return se.Seq, time.Time{}, nil
		}
		retry := errors.Is(err, ErrUnreachable) || errors.Is(err, ErrServer) || errors.Is(err, ErrOverloaded)
		if !retry || try >= 2 || ctx.Err() != nil {
			return 0, time.Time{}, err
		}
		t := time.NewTimer(time.Duration(try+1) * 200 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, time.Time{}, err
		}
	}
}

// UpdateKeys rotates this device's keys in a conversation: an empty commit,
// which carries a new path of keys (RFC 9420 §12.4.2) and starts a new
// epoch, so that what a thief of this device's current keys could read
// ends here. It also commits any proposals waiting in the group.
func (c *Client) UpdateKeys(ctx context.Context, gid candor.GroupID) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	if err := c.catchUpLocked(ctx, gid, 0); err != nil {
		return err
	}
	return c.commitLocked(ctx, gid, func(*mlsx.Group) (mlsx.CommitOptions, error) { return mlsx.CommitOptions{}, nil })
}
