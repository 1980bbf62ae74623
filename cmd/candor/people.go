package main

import (
	"errors"
	"fmt"
	"io"

	"candor"
	"candor/client"
	"candor/internal/translog"
)

// profileError is a failure to open or enrol the profile folder, which the
// explanation names.
type profileError struct {
	home string
	err  error
}

func (e profileError) Error() string { return e.err.Error() }
func (e profileError) Unwrap() error { return e.err }

// errNoGroup: no conversation on this device matches what was typed.
var errNoGroup = fmt.Errorf("no conversation on this device matches: %w", candor.ErrNotFound)

// errAmbiguous: several conversations match what was typed.
var errAmbiguous = errors.New("several conversations match")

// exitCode maps an error to the exit status the usage text documents.
func exitCode(err error) int {
	switch {
	case errors.Is(err, translog.ErrInconsistent), errors.Is(err, client.ErrJournalMismatch):
		return exitAltered
	case errors.Is(err, errUsage), errors.Is(err, errAmbiguous):
		return exitUsage
	case errors.Is(err, client.ErrBadInvitation):
		return exitInvitation
	case errors.Is(err, client.ErrUnreachable), errors.Is(err, client.ErrServerIdentity):
		return exitServer
	case errors.Is(err, client.ErrAlreadyEnrolled), errors.Is(err, client.ErrNotEnrolled):
		return exitProfile
	case errors.Is(err, client.ErrRevoked), errors.Is(err, client.ErrUnknownDevice):
		return exitRevoked
	case errors.Is(err, client.ErrRemoved):
		return exitNotMember
	case errors.Is(err, errNoGroup), errors.Is(err, client.ErrUnknownGroup), errors.Is(err, client.ErrUnknownUser),
		errors.Is(err, client.ErrNoSuchDevice), errors.Is(err, client.ErrNotMemberUser):
		return exitNotFound
	}
	return exitFailed
}

// explanation is what a person reads when a command fails: what happened,
// and what to do next.
type explanation struct {
	what, next string
}

// explain writes what happened and what to do next, then the error itself
// as details for whoever helps them.
func explain(w io.Writer, err error) {
	x := explanationOf(err)
	fmt.Fprintf(w, "candor: %s\n", x.what)
	if x.next != "" {
		fmt.Fprintf(w, "  %s\n", x.next)
	}
	if x.what != err.Error() {
		fmt.Fprintf(w, "  (details: %v)\n", err)
	}
}

func explanationOf(err error) explanation {
	var pe profileError
	home := "this profile folder"
	if errors.As(err, &pe) {
		home = pe.home
	}
	switch {
	case errors.Is(err, client.ErrJournalMismatch):
		return journalMismatchExplanation
	case errors.As(err, new(journalError)) && errors.Is(err, translog.ErrInconsistent):
		return journalInconsistentExplanation(err)
	case errors.Is(err, translog.ErrInconsistent):
		return inconsistentExplanation(err)
	case errors.Is(err, client.ErrAccessKeyChanged):
		return keyChangedExplanation("the access log")
	case errors.Is(err, client.ErrJournalKeyChanged):
		return keyChangedExplanation("the journal-heads log")
	case errors.Is(err, errAmbiguous):
		return explanation{"several conversations match that name or id.", "Type more of the id, as 'candor groups' shows it."}
	case errors.Is(err, client.ErrBadInvitation):
		return explanation{"the invitation code is not valid: it may be mistyped, already used, or expired.",
			"Ask your administrator for a new code ('candord invite') and enrol again."}
	case errors.Is(err, client.ErrServerIdentity):
		return explanation{"the server could not prove it belongs to your organisation, so candor did not talk to it.",
			"Check the server's address with your administrator; do not enrol against a server you do not know."}
	case errors.Is(err, client.ErrUnreachable):
		return explanation{"the server cannot be reached.",
			"Check your network connection and try again. 'candor read GROUP' still shows what this device has."}
	case errors.Is(err, client.ErrAlreadyEnrolled):
		return explanation{fmt.Sprintf("a device is already enrolled in %s.", home),
			"Choose another profile folder with -home or CANDOR_HOME to enrol another device."}
	case errors.Is(err, client.ErrNotEnrolled):
		return explanation{fmt.Sprintf("no device is enrolled in %s.", home),
			"Enrol it with 'candor enroll -name NAME CODE', or choose the right folder with -home or CANDOR_HOME."}
	case errors.Is(err, client.ErrRevoked), errors.Is(err, client.ErrUnknownDevice):
		return explanation{"this device was removed from your organisation's devices, so the server refuses it.",
			"Its history can still be read offline. To use candor here again, ask for a new invitation and enrol in a new profile folder."}
	case errors.Is(err, client.ErrRemoved):
		return explanation{"you are not a member of this conversation any more: you left it, or a member removed you.",
			"Its history stays on this device ('candor read'). To write there again, ask a member to add you."}
	case errors.Is(err, errNoGroup), errors.Is(err, client.ErrUnknownGroup):
		return explanation{"there is no such conversation on this device.",
			"'candor groups' lists them; a conversation someone added you to appears once this device has caught up."}
	case errors.Is(err, client.ErrUnknownUser):
		return explanation{"there is no such person in your organisation (no enrolled device).",
			"Check the user id; people appear once one of their devices is enrolled."}
	case errors.Is(err, client.ErrNoSuchDevice):
		return explanation{"you have no device with that id.", "'candor devices' lists your devices and their ids."}
	case errors.Is(err, client.ErrNotMemberUser):
		return explanation{"that person is not in the conversation.", "'candor members GROUP' shows who is."}
	case errors.Is(err, client.ErrNoKeys):
		return explanation{"a device of that person has not come online since it was enrolled, so it cannot be added yet.",
			"Try again once it has been online once."}
	case errors.Is(err, client.ErrPolicy):
		return explanation{"your organisation's policy does not allow this change of members.", "Ask your administrator."}
	case errors.Is(err, client.ErrBusy), errors.Is(err, client.ErrOverloaded):
		return explanation{"the server or the conversation is busy.", "Try again in a moment."}
	case errors.Is(err, client.ErrTooLarge):
		return explanation{"the message is too large.", "Send it in several parts."}
	}
	return explanation{err.Error(), ""}
}
