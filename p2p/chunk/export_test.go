package chunk

// Waiting is how many streams wait for an upload slot (for tests outside
// the package).
func (u *Uploads) Waiting() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.s.Waiting()
}
