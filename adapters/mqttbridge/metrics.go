package mqttbridge

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// metrics are the bridge's counters for /metrics.
type metrics struct {
	connected         atomic.Bool
	connects          atomic.Uint64
	connectFailures   atomic.Uint64
	published         atomic.Uint64
	publishErrors     atomic.Uint64
	inboundDropped    atomic.Uint64
	inboundRejected   atomic.Uint64
	commandsOK        atomic.Uint64
	commandsErr       atomic.Uint64
	retainedIgnored   atomic.Uint64
	duplicateCommands atomic.Uint64
	remoteDevices     atomic.Int64
	remotePending     atomic.Int64
	lastReconnect     atomic.Int64 // ns from connection loss to the next connect
}

// WriteMetrics writes the bridge's Prometheus metrics (text format). Safe
// to call at any time from any goroutine.
func (b *Bridge) WriteMetrics(w io.Writer) {
	metric := func(name, typ, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	connected := 0
	if b.m.connected.Load() {
		connected = 1
	}
	msgs, bytes := b.out.len()
	metric("esp32gw_mqtt_connected", "gauge", "1 while the bridge is connected to the MQTT broker.", connected)
	metric("esp32gw_mqtt_connects_total", "counter", "Successful connections to the broker, the first included.", b.m.connects.Load())
	metric("esp32gw_mqtt_connect_failures_total", "counter", "Connection attempts that failed.", b.m.connectFailures.Load())
	metric("esp32gw_mqtt_last_reconnect_seconds", "gauge", "Time from the last connection loss to the next connect.", time.Duration(b.m.lastReconnect.Load()).Seconds())
	metric("esp32gw_mqtt_published_total", "counter", "Messages the broker accepted (QoS 1: acknowledged).", b.m.published.Load())
	metric("esp32gw_mqtt_publish_errors_total", "counter", "Publishes that failed and were not retried.", b.m.publishErrors.Load())
	metric("esp32gw_mqtt_backlog_messages", "gauge", "Messages waiting for the broker.", msgs)
	metric("esp32gw_mqtt_backlog_bytes", "gauge", "Bytes (topics and payloads) waiting for the broker.", bytes)
	metric("esp32gw_mqtt_backlog_dropped_total", "counter", "Messages dropped, oldest first, because the backlog was full while the broker was away.", b.out.dropped.Load())
	metric("esp32gw_mqtt_inbound_dropped_total", "counter", "Messages from the broker dropped because a queue was full (commands among them answered \"gateway busy\").", b.m.inboundDropped.Load())
	metric("esp32gw_mqtt_inbound_rejected_total", "counter", "Messages from the broker rejected: over 64 KiB, naming an invalid device id, label or gateway, or (cluster mode) a bad meta or info.", b.m.inboundRejected.Load())
	metric("esp32gw_mqtt_retained_commands_ignored_total", "counter", "Retained messages on set topics, ignored.", b.m.retainedIgnored.Load())
	metric("esp32gw_mqtt_duplicate_commands_total", "counter", "Commands dropped as duplicates: the same payload on the same set topic within 1 s (a QoS 1 retransmission), or a second install request for a board within 2 s.", b.m.duplicateCommands.Load())
	fmt.Fprintf(w, "# HELP esp32gw_mqtt_commands_total MQTT commands answered on their result topic.\n# TYPE esp32gw_mqtt_commands_total counter\n")
	fmt.Fprintf(w, "esp32gw_mqtt_commands_total{result=\"ok\"} %d\nesp32gw_mqtt_commands_total{result=\"error\"} %d\n", b.m.commandsOK.Load(), b.m.commandsErr.Load())
	metric("esp32gw_mqtt_remote_devices", "gauge", "Devices imported from other gateways (cluster mode).", b.m.remoteDevices.Load())
	metric("esp32gw_mqtt_remote_pending", "gauge", "Devices seen on the broker whose meta has not arrived (forgotten after a minute).", b.m.remotePending.Load())
}
