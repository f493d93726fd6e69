//go:build !linux

package main

import "syscall"

// childAttrs: only Linux can tie a child's life to this process; elsewhere
// stop is the only way a server child ends (and /proc is missing anyway).
func childAttrs() *syscall.SysProcAttr { return nil }
