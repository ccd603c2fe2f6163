package relay

import "testing"

// TestLoopbackHost: the agent enforces the loopback rule for plain HTTP
// itself, whatever config validation does.
func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "127.0.0.9": true, "0.0.0.0": false, "": false, "192.0.2.1": false} {
		if got := LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v", host, got)
		}
	}
}
