package boardlink

import (
	"context"

	"github.com/esp32gw/esp32gw/gateway"
)

// Send is the link's SendFunc, for benchmarks that bypass the hub's rate limit.
func (l *Link) Send(ctx context.Context, c gateway.Command) error { return l.send(ctx, c) }
