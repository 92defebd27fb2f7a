package seeder

import (
	"errors"
	"testing"
)

// A webhook listener other hosts can reach must carry a shared secret:
// without one, anyone who reaches it could make every node fetch.
func TestWebhookOffLoopbackNeedsSecret(t *testing.T) {
	for _, tc := range []struct {
		addr, secret string
		refused      bool
	}{
		{"0.0.0.0:5063", "", true},
		{":5063", "", true},
		{"10.0.0.7:5063", "", true},
		{"[::]:5063", "", true},
		{"0.0.0.0:5063", "Bearer s3cret", false},
		{"127.0.0.1:5063", "", false},
		{"[::1]:5063", "", false},
		{"localhost:5063", "", false},
	} {
		err := WebhookConfig{Addr: tc.addr, Secret: tc.secret}.check()
		if got := errors.Is(err, ErrWebhookSecret); got != tc.refused {
			t.Errorf("%s secret=%q: refused %v (err %v), want %v", tc.addr, tc.secret, got, err, tc.refused)
		}
	}
}
