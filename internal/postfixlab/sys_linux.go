package postfixlab

import (
	"context"
	"net"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// reservePort listens on ip:0 with SO_REUSEPORT and returns the listener.
// The port stays taken while the listener is open, so no other test
// process picks it; Postfix's master also sets SO_REUSEPORT and, running
// as the same user (root), binds the same port beside it. The caller
// closes the listener once master has bound the port.
func reservePort(ip string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", net.JoinHostPort(ip, "0"))
}

// dieWithParent makes the kernel send SIGTERM to master when the process
// that started it dies, so that a killed test run leaves no Postfix
// behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// killGroup sends sig to the process group pgid (master makes itself a
// session and group leader with -s, and its children stay in its group).
func killGroup(pgid int, sig syscall.Signal) error {
	return syscall.Kill(-pgid, sig)
}

// supported is nil: the lab runs on Linux.
var supported error
