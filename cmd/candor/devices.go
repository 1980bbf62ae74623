package main

import (
	"context"
	"fmt"

	"candor"
)

// timeLayout is how candor shows times: local, to the minute.
const timeLayout = "2006-01-02 15:04"

// runDevices lists this person's devices, or with "remove ID" removes one.
func runDevices(ctx context.Context, e *env, args []string) error {
	switch {
	case len(args) == 0:
	case len(args) == 2 && args[0] == "remove":
		return removeDevice(ctx, e, candor.DeviceID(args[1]))
	default:
		fmt.Fprintln(e.err, "candor devices: either no arguments, or 'remove ID'")
		return errUsage
	}
	devs, err := e.c.Devices(ctx, e.c.User())
	if err != nil {
		return err
	}
	for _, d := range devs {
		state := "enrolled " + d.Enrolled.Local().Format(timeLayout)
		if !d.Revoked.IsZero() {
			state += ", removed " + d.Revoked.Local().Format(timeLayout)
		}
		mark := "  "
		if d.This {
			mark = "* "
		}
		fmt.Fprintf(e.out, "%s%s  %-12s %s\n", mark, d.ID, d.Name, state)
	}
	fmt.Fprintln(e.out, "(* this device)")
	return nil
}

func removeDevice(ctx context.Context, e *env, id candor.DeviceID) error {
	if err := e.c.Sync(ctx); err != nil {
		return err
	}
	if err := e.c.RemoveDevice(ctx, id); err != nil {
		return err
	}
	if id == e.c.Device() {
		fmt.Fprintf(e.out, "Removed this device (%s). It can no longer send or receive; its history stays readable here.\n", id)
		return nil
	}
	fmt.Fprintf(e.out, "Removed device %s. The server refuses it, and it was taken out of your conversations: it cannot read what is sent from now on.\n", id)
	return nil
}
