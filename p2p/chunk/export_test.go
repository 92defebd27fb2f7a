package chunk

import (
	"testing"
	"time"
)

// Waiting is how many streams wait for an upload slot (for tests outside
// the package).
func (u *Uploads) Waiting() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.s.Waiting()
}

// WaitWaiting waits (up to 5 s) until n streams wait for a slot of u.
func WaitWaiting(t *testing.T, u *Uploads, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); u.Waiting() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams wait for a slot, want %d", u.Waiting(), n)
		}
	}
}

// WaitFailed waits (up to 5 s) until ss's read loop has ended.
func WaitFailed(t *testing.T, ss *Session) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ss.failed.Load() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session's read loop did not end")
		}
	}
}
