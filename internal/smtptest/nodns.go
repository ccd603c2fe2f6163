package smtptest

import (
	"context"
	"errors"
	"net"
)

// ErrNoDNS is what NoDNS answers to every lookup.
var ErrNoDNS = errors.New("smtptest: no DNS in tests")

// NoDNS is a probe resolver that fails every lookup, for tests whose
// targets are pinned loopback addresses: nothing may reach a real resolver.
type NoDNS struct{}

// LookupMX fails with ErrNoDNS.
func (NoDNS) LookupMX(context.Context, string) ([]*net.MX, error) { return nil, ErrNoDNS }

// LookupIPAddr fails with ErrNoDNS.
func (NoDNS) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) { return nil, ErrNoDNS }
