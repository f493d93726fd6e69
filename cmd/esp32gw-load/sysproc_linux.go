package main

import "syscall"

// childAttrs makes the kernel kill a server child if this tool dies first,
// so no gateway outlives a crashed or killed load run.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
