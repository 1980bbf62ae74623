package tui

import (
	"fmt"
	"testing"
	"time"

	"candor/client"

	tea "charm.land/bubbletea/v2"
)

// BenchmarkView measures drawing a frame of a conversation with a long
// history, which happens at every change on screen.
func BenchmarkView(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			m := newModel(b.Context(), identity{t: b, user: "alice", device: "laptop"}, "", func() time.Time { return t0 }, time.UTC)
			m.Update(tea.WindowSizeMsg{Width: 160, Height: 50})
			m.Update(groupsLoaded{groups: []client.Group{{ID: gRisk, Name: "risk-desk"}}})
			m.Update(membersLoaded{group: gRisk, members: []client.Member{aliceL, alicePh, bobD, carolT}})
			msgs := make([]client.Message, n)
			for i := range msgs {
				msgs[i] = client.Message{Group: gRisk, Seq: uint64(i + 1), User: "bob", Device: "desk", Time: t0,
					Text: fmt.Sprintf("message %d, long enough to be wrapped on a narrow terminal like the ones people keep beside their trading screens", i)}
			}
			m.Update(historyLoaded{group: gRisk, msgs: msgs})
			b.ReportAllocs()
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}
