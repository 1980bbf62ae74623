package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"candor"
	"candor/internal/mlsx"
)

// read processes one entry with the passive member, or joins from the
// Welcome the entry's commit sent the archive, and says what it was. An
// entry that does not verify is a Failed record; only what stops the
// replay as a whole (the context, the store, a Welcome the keys do not
// open) is an error.
func (r *groupReplay) read(ctx context.Context, e Entry) (Record, error) {
	r.v.at = e.Time
	rec := Record{Group: r.id, Seq: e.Seq, Epoch: e.Epoch, Time: e.Time}
	switch {
	case r.member != nil:
		if err := r.process(ctx, e, &rec); err != nil {
			return Record{}, err
		}
	default:
		rec.Kind, rec.Status = kindOf(e), Unreadable
		rec.Sender = Sender{Device: e.Sender}
		rec.Reason = "the archive was not a member of the group when this entry was sent"
	}
	if r.member == nil {
		if w, ok := r.welcomeAt(e.Seq); ok {
			if err := r.join(ctx, e, w, &rec); err != nil {
				return Record{}, err
			}
		}
	}
	return rec, nil
}

func (r *groupReplay) welcomeAt(seq uint64) (Welcome, bool) {
	for _, w := range r.welcomes {
		if w.Seq == seq {
			return w, true
		}
	}
	return Welcome{}, false
}

// ErrKeys: no archive key given opens the archive's Welcome.
var ErrKeys = fmt.Errorf("archive: the archive's welcome does not open with the archive keys given: %w", candor.ErrPermission)

// join joins the group from w, sent with the commit e, trying each key.
func (r *groupReplay) join(ctx context.Context, e Entry, w Welcome, rec *Record) error {
	var errs []error
	for _, k := range r.cfg.Keys {
		g, err := mlsx.JoinPassive(ctx, mlsx.PassiveConfig{Store: r.st, Validator: r.v}, w.Data, k.KeyPackage, k.Secrets, nil)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		names, err := roster(g.Members())
		if err != nil {
			return err
		}
		r.member, r.names = g, names
		rec.Kind, rec.Status, rec.Epoch = KindCommit, Joined, e.Epoch
		rec.Added = nil
		for _, m := range g.Members() {
			rec.Added = append(rec.Added, names[m.Leaf].sender())
		}
		rec.Sender = r.logSender(e)
		rec.Reason = "the archive joined here from its Welcome; added lists every member at that point; sender as the log names it"
		return nil
	}
	return fmt.Errorf("%w (%w)", ErrKeys, errors.Join(errs...))
}

// logSender names the device the log says uploaded e, with its user when
// a member's certificate names that device.
func (r *groupReplay) logSender(e Entry) Sender {
	for _, w := range r.names {
		if w.device == e.Sender && !w.archive {
			return w.sender()
		}
	}
	return Sender{Device: e.Sender}
}

// process applies e to the passive member.
func (r *groupReplay) process(ctx context.Context, e Entry, rec *Record) error {
	ev, err := r.member.Process(ctx, e.Message)
	if err != nil {
		if !refused(err) {
			return fmt.Errorf("processing: %w", err)
		}
		rec.Kind, rec.Status, rec.Reason = kindOf(e), Failed, err.Error()
		rec.Sender = Sender{Device: e.Sender}
		return nil
	}
	rec.Status, rec.Epoch = Verified, ev.Epoch
	switch ev.Kind {
	case mlsx.EventApplication:
		rec.Kind = KindMessage
		rec.Sender = r.sender(ev.Sender)
		text, err := decodeText(ev.Plaintext)
		if err != nil {
			rec.Reason = err.Error()
		}
		rec.Text = text
	case mlsx.EventProposal:
		rec.Kind = KindProposal
		rec.Sender = r.sender(ev.Sender)
	case mlsx.EventCommit:
		rec.Kind = KindCommit
		rec.Sender = r.sender(ev.Sender) // the committer's leaf is of the epoch it ended
		for _, m := range ev.Added {
			rec.Added = append(rec.Added, r.memberName(m))
		}
		for _, m := range ev.Removed {
			rec.Removed = append(rec.Removed, r.memberName(m))
		}
		if ev.SelfRemoved {
			r.member, r.names = nil, nil
			break
		}
		names, err := roster(r.member.Members())
		if err != nil {
			return err
		}
		r.names = names
	}
	if !rec.Sender.External && rec.Sender.Device != e.Sender {
		rec.Reason = joinReason(rec.Reason, fmt.Sprintf("the log names device %q as the sender", e.Sender))
	}
	return nil
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func (r *groupReplay) sender(s mlsx.Sender) Sender {
	if s.External {
		return Sender{External: true}
	}
	if w, ok := r.names[s.Index]; ok {
		return w.sender()
	}
	return Sender{}
}

func (r *groupReplay) memberName(m mlsx.Member) Sender {
	cert, err := m.Credential.Certificate()
	if err != nil {
		return Sender{}
	}
	w, err := name(m.Leaf, cert)
	if err != nil {
		return Sender{}
	}
	return w.sender()
}

// refused reports whether err is the adapter refusing the entry (a
// signature, a decryption, an epoch, a replay, a rule) rather than
// something that stops the replay.
func refused(err error) bool {
	return errors.Is(err, candor.ErrInvalid) || errors.Is(err, candor.ErrConflict) || errors.Is(err, candor.ErrPermission)
}

// kindOf says what an entry is without reading it, from the log's
// commit flag and, failing that, the message's public header.
func kindOf(e Entry) Kind {
	if e.Commit {
		return KindCommit
	}
	info, err := mlsx.Inspect(e.Message)
	if err != nil {
		return KindUnknown
	}
	switch info.Content {
	case mlsx.ContentApplication:
		return KindMessage
	case mlsx.ContentProposal:
		return KindProposal
	case mlsx.ContentCommit:
		return KindCommit
	}
	return KindUnknown
}

// content mirrors the plaintext candor's clients send (client/content.go):
// a JSON object whose text field is the message. Fields this version does
// not know are ignored, as the clients ignore them.
type content struct {
	Text *string `json:"text"`
}

// decodeText returns a message's text. A plaintext that is not candor's
// content, or has no text, keeps the record (verified, without text) and
// says so.
func decodeText(plain []byte) (string, error) {
	var c content
	if err := json.Unmarshal(plain, &c); err != nil {
		return "", fmt.Errorf("the plaintext is not candor's message content (%d bytes)", len(plain))
	}
	if c.Text == nil {
		return "", errors.New("the message content carries no text")
	}
	return *c.Text, nil
}
