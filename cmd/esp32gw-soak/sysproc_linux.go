package main

import "syscall"

// childAttrs makes the kernel kill the gateway if this tool dies first.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
