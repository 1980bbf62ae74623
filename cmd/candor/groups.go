package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"candor"
	"candor/client"
)

// shortID is how many hex digits of a group id are shown: enough to tell a
// person's conversations apart, few enough to type.
const shortID = 8

// syncOrWarn catches up with the server. Offline it warns and lets the
// command go on with what the device has, for commands that only show.
func syncOrWarn(ctx context.Context, e *env) error {
	err := e.c.Sync(ctx)
	if errors.Is(err, client.ErrUnreachable) {
		fmt.Fprintln(e.err, "candor: offline: the server cannot be reached; showing what this device has, which may be out of date.")
		return nil
	}
	return err
}

// resolveGroup finds the conversation a person named: @USER for the
// direct conversation with USER, else by its name on this device, else by
// the first characters of its id. Names win over ids, and conversations
// this device is still in over those it left.
func resolveGroup(ctx context.Context, c *client.Client, arg string) (client.Group, error) {
	gs, err := c.Groups(ctx)
	if err != nil {
		return client.Group{}, err
	}
	if user, ok := strings.CutPrefix(arg, "@"); ok {
		gid, err := c.FindDirect(ctx, candor.UserID(user))
		if errors.Is(err, client.ErrUnknownGroup) {
			return client.Group{}, fmt.Errorf("no direct conversation with %s ('candor direct %s' starts one): %w", user, user, errNoGroup)
		}
		if err != nil {
			return client.Group{}, err
		}
		for _, g := range gs {
			if g.ID == gid {
				return g, nil
			}
		}
		return client.Group{}, fmt.Errorf("%s: %w", arg, errNoGroup)
	}
	pick := func(match func(client.Group) bool) ([]client.Group, bool) {
		var in, all []client.Group
		for _, g := range gs {
			if match(g) {
				all = append(all, g)
				if !g.Removed {
					in = append(in, g)
				}
			}
		}
		if len(in) > 0 {
			return in, true
		}
		return all, len(all) > 0
	}
	found, ok := pick(func(g client.Group) bool { return g.Name != "" && g.Name == arg })
	if !ok && arg != "" {
		lower := strings.ToLower(arg)
		found, ok = pick(func(g client.Group) bool { return strings.HasPrefix(g.ID.String(), lower) })
	}
	switch {
	case !ok:
		return client.Group{}, fmt.Errorf("%q: %w", arg, errNoGroup)
	case len(found) > 1:
		var ids []string
		for _, g := range found {
			ids = append(ids, g.ID.String()[:shortID])
		}
		return client.Group{}, fmt.Errorf("%q matches %s: %w", arg, strings.Join(ids, ", "), errAmbiguous)
	}
	return found[0], nil
}

// people returns the people among members, sorted, each once.
func people(ms []client.Member) []candor.UserID {
	var out []candor.UserID
	for _, m := range ms {
		if !m.Archive && !slices.Contains(out, m.User) {
			out = append(out, m.User)
		}
	}
	slices.Sort(out)
	return out
}

// membersText names a conversation's people, and its archive, which is
// never left out of a list of who can read.
func membersText(ms []client.Member) string {
	s := joinUsers(people(ms))
	if slices.ContainsFunc(ms, func(m client.Member) bool { return m.Archive }) {
		s += " and the archive"
	}
	return s
}

// label is how a conversation is shown: its name, or for a direct one the
// other person, or for one this device joined without a name, its id.
func label(g client.Group, ms []client.Member, me candor.UserID) string {
	if g.Name != "" {
		return g.Name
	}
	if client.IsDirect(g.ID) {
		for _, u := range people(ms) {
			if u != me {
				return "direct with " + string(u)
			}
		}
		return "direct"
	}
	return "conversation " + g.ID.String()[:shortID]
}

func joinUsers(us []candor.UserID) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = string(u)
	}
	return strings.Join(s, ", ")
}

func runGroups(ctx context.Context, e *env, _ []string) error {
	if err := syncOrWarn(ctx, e); err != nil {
		return err
	}
	gs, err := e.c.Groups(ctx)
	if err != nil {
		return err
	}
	if len(gs) == 0 {
		fmt.Fprintln(e.out, "No conversations yet. Start one with 'candor create NAME USER...' or 'candor direct USER'.")
		return nil
	}
	for _, g := range gs {
		if g.Removed {
			fmt.Fprintf(e.out, "%s  %s  (no longer a member; history kept)\n", g.ID.String()[:shortID], label(g, nil, e.c.User()))
			continue
		}
		ms, err := e.c.Members(ctx, g.ID)
		if err != nil {
			return err
		}
		unread := ""
		if g.Unread > 0 {
			unread = fmt.Sprintf("  (%d unread)", g.Unread)
		}
		fmt.Fprintf(e.out, "%s  %s  %s%s\n", g.ID.String()[:shortID], label(g, ms, e.c.User()), membersText(ms), unread)
	}
	return nil
}

func runCreate(ctx context.Context, e *env, args []string) error {
	name := args[0]
	if strings.TrimSpace(name) == "" {
		fmt.Fprintln(e.err, "candor create: the name must not be empty")
		return errUsage
	}
	users := make([]candor.UserID, 0, len(args)-1)
	for _, u := range args[1:] {
		users = append(users, candor.UserID(u))
	}
	if err := e.c.Sync(ctx); err != nil {
		return err
	}
	// Everyone is looked up first, so that a mistyped user id creates
	// nothing.
	for _, u := range users {
		if _, err := e.c.Devices(ctx, u); err != nil {
			return err
		}
	}
	gid, err := e.c.CreateGroup(ctx, name, users...)
	if err != nil {
		if gid != "" {
			fmt.Fprintf(e.err, "candor: conversation %s %q was created, but not everyone could be added; try 'candor add'.\n", gid.String()[:shortID], name)
		}
		return err
	}
	fmt.Fprintf(e.out, "Created %q (%s) with %s.\n", name, gid.String()[:shortID], joinUsers(append(users, e.c.User())))
	return nil
}

func runDirect(ctx context.Context, e *env, args []string) error {
	if err := e.c.Sync(ctx); err != nil {
		return err
	}
	user := candor.UserID(args[0])
	if user == e.c.User() {
		fmt.Fprintln(e.err, "candor direct: a direct conversation is with someone else")
		return errUsage
	}
	gid, created, err := e.c.Direct(ctx, user)
	if err != nil {
		return err
	}
	verb := "Your conversation with %s is %s.\n"
	if created {
		verb = "Started a conversation with %s: %s.\n"
	}
	fmt.Fprintf(e.out, verb, user, gid.String()[:shortID])
	return nil
}

// groupAndUsers resolves a GROUP USER... command line.
func groupAndUsers(ctx context.Context, e *env, args []string) (client.Group, []candor.UserID, error) {
	if err := e.c.Sync(ctx); err != nil {
		return client.Group{}, nil, err
	}
	g, err := resolveGroup(ctx, e.c, args[0])
	if err != nil {
		return client.Group{}, nil, err
	}
	if g.Removed {
		return client.Group{}, nil, client.ErrRemoved
	}
	var users []candor.UserID
	for _, u := range args[1:] {
		users = append(users, candor.UserID(u))
	}
	return g, users, nil
}

func runAdd(ctx context.Context, e *env, args []string) error {
	g, users, err := groupAndUsers(ctx, e, args)
	if err != nil {
		return err
	}
	if err := e.c.AddUsers(ctx, g.ID, users...); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "Added %s to %s, with all their devices.\n", joinUsers(users), g.ID.String()[:shortID])
	return nil
}

func runRemove(ctx context.Context, e *env, args []string) error {
	g, users, err := groupAndUsers(ctx, e, args)
	if err != nil {
		return err
	}
	if slices.Contains(users, e.c.User()) {
		fmt.Fprintln(e.err, "candor remove: to take yourself out, use 'candor leave GROUP'")
		return errUsage
	}
	if err := e.c.RemoveUsers(ctx, g.ID, users...); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "Removed %s from %s: their devices cannot read what is sent from now on.\n", joinUsers(users), g.ID.String()[:shortID])
	return nil
}

func runLeave(ctx context.Context, e *env, args []string) error {
	g, _, err := groupAndUsers(ctx, e, args)
	if err != nil {
		return err
	}
	if err := e.c.Leave(ctx, g.ID); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "You left %s. Your devices are taken out with the next change the others make; the history stays on this device.\n", g.ID.String()[:shortID])
	return nil
}

func runRename(ctx context.Context, e *env, args []string) error {
	g, err := resolveGroup(ctx, e.c, args[0])
	if err != nil {
		return err
	}
	if err := e.c.Rename(ctx, g.ID, args[1]); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%s is now called %q on this device (names are not sent to anyone).\n", g.ID.String()[:shortID], args[1])
	return nil
}

// runMembers shows the member list every member's device holds: each
// person, then their devices, with names from the directory when online.
func runMembers(ctx context.Context, e *env, args []string) error {
	if err := syncOrWarn(ctx, e); err != nil {
		return err
	}
	g, err := resolveGroup(ctx, e.c, args[0])
	if err != nil {
		return err
	}
	if g.Removed {
		return client.ErrRemoved
	}
	ms, err := e.c.Members(ctx, g.ID)
	if err != nil {
		return err
	}
	ps := people(ms)
	devices := slices.DeleteFunc(slices.Clone(ms), func(m client.Member) bool { return m.Archive })
	fmt.Fprintf(e.out, "%s (%s): %d people, %d devices and the organisation's archive. Every member listed can read what is sent.\n",
		label(g, ms, e.c.User()), g.ID.String()[:shortID], len(ps), len(devices))
	for _, p := range ps {
		names := map[candor.DeviceID]string{}
		if devs, err := e.c.Devices(ctx, p); err == nil {
			for _, d := range devs {
				names[d.ID] = d.Name
			}
		}
		you := ""
		if p == e.c.User() {
			you = " (you)"
		}
		fmt.Fprintf(e.out, "  %s%s\n", p, you)
		for _, m := range ms {
			if m.User != p {
				continue
			}
			line := "    " + string(m.Device)
			if n := names[m.Device]; n != "" {
				line += "  " + n
			}
			if m.Device == e.c.Device() {
				line += "  (this device)"
			}
			fmt.Fprintln(e.out, line)
		}
	}
	return printArchive(ctx, e, ms)
}

// printArchive shows the conversation's archive member and its custody:
// who can open the record, and how. Every conversation has one; a list
// without it would be a refusal to send (client.ErrNotArchived).
func printArchive(ctx context.Context, e *env, ms []client.Member) error {
	i := slices.IndexFunc(ms, func(m client.Member) bool { return m.Archive })
	if i < 0 {
		return client.ErrNotArchived
	}
	held := ms[i].ArchiveKey
	a, err := e.c.Archive(ctx)
	if errors.Is(err, client.ErrUnreachable) {
		fmt.Fprintln(e.out, "  archive: the organisation's record (its custody policy needs the server; you are offline)")
		return nil
	}
	if err != nil {
		return err
	}
	if held != a.Key {
		// The organisation moved to a new archive key; this conversation
		// still holds the one before until its next commit.
		fmt.Fprintf(e.out, "  archive: %s's record of this conversation, previous key %q; the next message moves it to key %q\n",
			a.Organisation, held, a.Key)
	} else {
		fmt.Fprintf(e.out, "  archive: %s's record of this conversation, key %q\n", a.Organisation, a.Key)
	}
	fmt.Fprintf(e.out, "    opened only by %d of its %d custodians together, after a public log entry ('candor audit'):\n", a.K, a.N)
	fmt.Fprintf(e.out, "    %s\n", strings.Join(a.Custodians, "; "))
	return nil
}
