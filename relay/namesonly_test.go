package relay

import (
	"context"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/config"
)

// TestNamesOnly: every configured relay by name with its kind (local when
// unset), and none of them probes.
func TestNamesOnly(t *testing.T) {
	cfg := config.Default()
	cfg.Relays = []config.Relay{{Name: "relay-1"}, {Name: "relay-2", Kind: KindAgent}}
	got := NamesOnly(cfg)
	if len(got) != 2 {
		t.Fatalf("NamesOnly gave %d relays, want 2", len(got))
	}
	for name, kind := range map[string]string{"relay-1": KindLocal, "relay-2": KindAgent} {
		r := got[name]
		if r == nil || r.Name() != name || r.Kind() != kind {
			t.Fatalf("%s: %#v, want kind %s", name, r, kind)
		}
		if _, err := r.Probe(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "does not probe") {
			t.Fatalf("%s probed: %v", name, err)
		}
	}
}
