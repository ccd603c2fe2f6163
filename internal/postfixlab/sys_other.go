//go:build !linux

package postfixlab

import (
	"errors"
	"net"
	"os/exec"
	"syscall"
)

func reservePort(string) (net.Listener, error) { return nil, supported }

func dieWithParent(*exec.Cmd) {}

func killGroup(int, syscall.Signal) error { return supported }

// supported explains why the lab does not run here.
var supported = errors.New("postfixlab: the Postfix test bed runs on Linux only (Debian's postfix package)")
