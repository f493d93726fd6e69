package testgw

import (
	"fmt"
	"syscall"
)

// Signal sends sig to the running gateway without waiting for anything
// (SIGHUP: reload).
func (g *Gateway) Signal(sig syscall.Signal) error {
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	select {
	case <-exited:
		g.mu.Lock()
		defer g.mu.Unlock()
		return fmt.Errorf("esp32gw has exited: %v", g.err)
	default:
	}
	return cmd.Process.Signal(sig)
}

// Exited is closed when the current process has exited.
func (g *Gateway) Exited() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exited
}

// Pid is the process id of the running gateway (for /proc reads such as RSS).
func (g *Gateway) Pid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd.Process.Pid
}
