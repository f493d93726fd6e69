package gwproc

import "syscall"

// ChildAttrs makes the kernel kill a gateway child if the tool dies first,
// so no gateway outlives a crashed or killed run.
func ChildAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
