package client

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
)

// TestAckQueue checks the coalescing of a live stream's acks: the newest
// per group, no group more often than every ackInterval unless all are
// asked for, none queued once the stream has ended.
func TestAckQueue(t *testing.T) {
	s := newStreamConn(nil, slog.New(slog.DiscardHandler))
	g1, g2 := candor.GroupID("g1"), candor.GroupID("g2")
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	for seq := uint64(1); seq <= 10; seq++ {
		s.queueAck(g1, seq)
	}
	s.queueAck(g2, 7)
	s.queueAck(g2, 3) // a cursor never goes back
	if diff := cmp.Diff(map[candor.GroupID]uint64{g1: 10, g2: 7}, s.takeAcks(now, false)); diff != "" {
		t.Errorf("first acks (-want +got):\n%s", diff)
	}
	if got := s.takeAcks(now, false); got != nil {
		t.Errorf("acks with nothing queued: %v", got)
	}
	// Within ackInterval of the last: held back, unless all are due.
	s.queueAck(g1, 11)
	if got := s.takeAcks(now.Add(ackInterval/2), false); got != nil {
		t.Errorf("acks within ackInterval: %v", got)
	}
	s.queueAck(g1, 12)
	if diff := cmp.Diff(map[candor.GroupID]uint64{g1: 12}, s.takeAcks(now.Add(ackInterval), false)); diff != "" {
		t.Errorf("acks after ackInterval (-want +got):\n%s", diff)
	}
	s.queueAck(g2, 8)
	if diff := cmp.Diff(map[candor.GroupID]uint64{g2: 8}, s.takeAcks(now.Add(ackInterval), true)); diff != "" {
		t.Errorf("all acks (-want +got):\n%s", diff)
	}
	// Requeued acks do not overtake newer ones.
	s.queueAck(g1, 14)
	s.requeue(map[candor.GroupID]uint64{g1: 13, g2: 9})
	s.queueAck(g2, 10)
	if diff := cmp.Diff(map[candor.GroupID]uint64{g1: 14, g2: 10}, s.end()); diff != "" {
		t.Errorf("acks left at the end (-want +got):\n%s", diff)
	}
	if s.queueAck(g1, 15) {
		t.Error("an ack was queued on an ended stream")
	}
	if got := s.takeAcks(now.Add(time.Hour), true); got != nil {
		t.Errorf("acks after the end: %v", got)
	}
}
