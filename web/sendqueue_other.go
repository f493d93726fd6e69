//go:build !linux

package web

import (
	"net"
	"time"
)

// sendQueue is only measured on Linux; elsewhere a browser that falls
// behind is found by its queue length and write deadline alone.
type sendQueue struct{}

func newSendQueue(net.Conn) *sendQueue { return nil }

func (q *sendQueue) backlog() int { return 0 }

func (q *sendQueue) room(int, time.Duration, <-chan struct{}) bool { return true }
