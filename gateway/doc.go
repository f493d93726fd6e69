// Package gateway is the core of esp32gw: the devices and their last-known
// state, the event hub with sequence numbers and history, command routing with
// allow-lists, and the config types with their validation.
//
// It imports only the standard library. Transports (adapters/*) feed it through
// the Sink interface; browsers, HTTP and MQTT read it through Subscribe,
// Snapshot and Command. The Hub starts no goroutines of its own: every
// goroutine that touches it belongs to a transport or a web handler, which
// stops it when its context ends.
package gateway
