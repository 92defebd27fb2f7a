package plan

import "testing"

// FuzzSlots drives a Slots with first-copy slots through any sequence of
// enqueues, takes, grants and releases, and checks after every step that
// no more sends are under way than the slots allow, and that sends of
// chunks sent before (priority above 0) never outnumber the usual slots.
func FuzzSlots(f *testing.F) {
	f.Add(uint8(2), uint8(2), []byte{0x10, 0x21, 0x03, 0x44, 0x13, 0x02, 0x05, 0x31})
	f.Add(uint8(1), uint8(0), []byte{0x00, 0x11, 0x22, 0x02, 0x03, 0x03})
	f.Fuzz(func(t *testing.T, slots, first uint8, ops []byte) {
		n, k := int(slots%5)+1, int(first%5)
		s := NewSlots[*tw](n, 4)
		s.SetFirstCopies(k)
		type send struct {
			peer string
			dup  bool
		}
		var held []send
		granted := func(w *tw) {
			held = append(held, send{w.w.Peer, w.w.Prio() > 0})
		}
		for step, op := range ops {
			if step >= 256 {
				break
			}
			peer := string(rune('a' + int(op>>4)%4))
			prio := int(op>>6) - 1 // -1..2
			switch op % 4 {
			case 0:
				s.Enqueue(waiter(peer, peer, prio))
			case 1:
				if w := waiter(peer, peer, prio); s.Take(w) {
					granted(w)
				}
			case 2:
				s.Grant(granted)
			case 3:
				if len(held) > 0 {
					i := int(op>>2) % len(held)
					s.Release(held[i].peer)
					held = append(held[:i], held[i+1:]...)
				}
			}
			dups := 0
			for _, h := range held {
				if h.dup {
					dups++
				}
			}
			if len(held) > n+k || dups > n || s.free != n+k-len(held) {
				t.Fatalf("step %d: %d sends (%d of chunks sent before), free %d, slots %d + %d first-copy", step, len(held), dups, s.free, n, k)
			}
		}
	})
}
