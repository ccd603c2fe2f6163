package relay

import (
	"context"

	"github.com/gmailtls/gmailtls/probe"
)

// runMTAStack runs the relay's own TLS tools toward the IPs in native.
func (l *Local) runMTAStack(ctx context.Context, cfg probe.Config, native []probe.Result) []probe.Result {
	return nil
}
