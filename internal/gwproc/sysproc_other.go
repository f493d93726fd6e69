//go:build !linux

package gwproc

import "syscall"

// ChildAttrs: only Linux can tie a child's life to this process; elsewhere
// stopping it is the only way a gateway child ends.
func ChildAttrs() *syscall.SysProcAttr { return nil }
