package mqttbridge

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/backoff"
)

// Connection tunables; each has its unit and its reason.
const (
	// Reconnect backoff (internal/backoff): the first retry comes within
	// 1 s (a jittered 0.5–1 s), then the base doubles up to 30 s (contract:
	// "first retry within 1 s, jittered exponential backoff, cap 30 s,
	// never gives up").
	backoffBase = time.Second
	backoffCap  = 30 * time.Second

	// keepAlive makes the broker publish our Last Will within 1.5× this
	// when the link dies silently; pingTimeout drops a dead link.
	keepAlive   = 15 * time.Second
	pingTimeout = 5 * time.Second
	// connectTimeout bounds one connection attempt (dial + CONNACK).
	connectTimeout = 5 * time.Second
	// writeTimeout bounds how long paho may take to accept one publish.
	writeTimeout = 2 * time.Second
	// subscribeTimeout bounds waiting for SUBACK after a (re)connect.
	subscribeTimeout = 5 * time.Second
)

// connection keeps the bridge connected to the broker. It owns paho's
// client and, through conns, the network connection under it; the Last
// Will and the retained "online" birth message on PREFIX/bridge/state; the
// subscriptions made on every connect; the reconnect backoff; and the gate
// that tells the publisher and the cluster whether the broker is up.
//
// run is its loop; Bridge.Run calls it on its own goroutine and, once it
// has returned and the publisher has stopped, calls shutdown. paho's
// goroutines end before shutdown returns. The handlers it gives paho never
// block: a lost connection goes to a channel of one, messages to
// Bridge.onMessage, which only hands off to bounded queues.
type connection struct {
	cfg       gateway.MQTTConfig
	clientID  string
	brokerURL string // cfg.Broker with any password redacted, for logs
	filters   map[string]byte
	prefix    string // for logs
	will      string // the bridge state topic: Last Will and birth
	log       *slog.Logger
	m         *metrics
	out       *outbox // the birth message goes to its front
	onMessage mqtt.MessageHandler

	// Knobs tests may lower before Run.
	backoff   backoff.Policy
	tlsConfig *tls.Config // nil: system roots (or cfg.CAFile) for ssl://

	// up is called on every (re)connect once subscribed and the gate is
	// open; lost when the connection is lost. Neither may block.
	up, lost func()

	gate   gate
	conns  conns       // paho's network connection, to abort or drop it
	client mqtt.Client // set by newClient
	lostCh chan error  // capacity 1: paho's connection-lost handler
}

// newConnection returns the bridge's connection; filters are the
// subscriptions it makes on every connect.
func newConnection(cfg gateway.MQTTConfig, clientID string, t topics, filters map[string]byte, log *slog.Logger, m *metrics, out *outbox) *connection {
	c := &connection{
		cfg: cfg, clientID: clientID, brokerURL: redactURL(cfg.Broker), filters: filters,
		prefix: t.prefix, will: t.bridgeState(), log: log, m: m, out: out,
		backoff: backoff.Policy{Base: backoffBase, Cap: backoffCap},
		up:      func() {}, lost: func() {},
		lostCh: make(chan error, 1),
	}
	c.gate.init()
	c.conns.init()
	return c
}

// redactURL returns a broker URL safe to log: any password replaced by
// "xxxxx" (url.URL.Redacted). An unparsable one loses everything before
// its last '@', where credentials would be.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return "xxxxx" + s[i:]
		}
		return s
	}
	return u.Redacted()
}

// options builds paho's options. AutoReconnect and ConnectRetry are off:
// run owns reconnection (jittered backoff, capped at 30 s, stoppable at
// once by ctx) and calls Connect on the same client, so paho's store keeps
// unacknowledged QoS 1 publishes and resends them (CleanSession false,
// fixed client id: the broker keeps our session across outages).
func (c *connection) options() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	o.AddBroker(c.cfg.Broker)
	o.SetClientID(c.clientID)
	o.SetUsername(c.cfg.Username)
	o.SetPassword(c.cfg.Password)
	o.SetCleanSession(false)
	// The ordered store resends unacknowledged publishes in the order they
	// were made (the default MemoryStore resends in map order).
	o.SetStore(mqtt.NewOrderedMemoryStore())
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false) // run subscribes on every connect
	// Order stays on: onMessage never blocks (it only hands off to bounded
	// channels), and ordered delivery keeps a remote device's status and
	// values in the order they were published.
	o.SetOrderMatters(true)
	o.SetKeepAlive(keepAlive)
	o.SetPingTimeout(pingTimeout)
	o.SetConnectTimeout(connectTimeout)
	o.SetWriteTimeout(writeTimeout)
	o.SetBinaryWill(c.will, []byte(payloadOffline), 1, true)
	o.SetCustomOpenConnectionFn(c.conns.open)
	o.SetDefaultPublishHandler(c.onMessage)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case c.lostCh <- err:
		default:
		}
	})
	if u, err := url.Parse(c.cfg.Broker); err == nil {
		switch u.Scheme {
		case "ssl", "tls", "mqtts", "tcps", "wss":
			tc := c.tlsConfig
			if tc == nil {
				tc = &tls.Config{MinVersion: tls.VersionTLS12}
				if c.cfg.CAFile != "" {
					// Validated when the config was loaded; a file that has
					// gone since falls back to the system roots, loudly.
					pool, err := gateway.LoadCAFile(c.cfg.CAFile)
					if err != nil {
						c.log.Error("mqtt.ca_file", "err", err)
					}
					tc.RootCAs = pool
				}
			}
			o.SetTLSConfig(tc)
		}
	}
	return o
}

// newClient makes paho's client (once, before run); it starts nothing.
func (c *connection) newClient() mqtt.Client {
	c.client = mqtt.NewClient(c.options())
	return c.client
}

// run connects, serves the connection until it is lost, backs off and
// connects again, until ctx ends. It logs state changes once, not every
// attempt. A connection whose subscriptions failed is dropped and counts as
// a failed attempt. When it returns, paho is not in the middle of a connect.
func (c *connection) run(ctx context.Context) {
	retry := 0 // retries since the last good connection: the backoff's n
	failing := false
	var lostAt time.Time
	for {
		tok := c.client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			// Close the socket of the attempt (paho's handshake fails at
			// once) and wait for paho to finish, so none of its goroutines
			// outlive Run.
			c.conns.abort()
			if !tok.WaitTimeout(shutdownConnectWait) {
				c.log.Warn("mqtt: connect attempt still running at shutdown", "broker", c.brokerURL)
			}
			return
		}
		if err := tok.Error(); err != nil {
			c.m.connectFailures.Add(1)
			if !failing {
				c.log.Warn("mqtt: cannot connect, retrying with backoff", "broker", c.brokerURL, "err", err)
				failing = true
			} else {
				c.log.Debug("mqtt: connect failed", "broker", c.brokerURL, "err", err)
			}
		} else {
			c.m.connects.Add(1)
			if !lostAt.IsZero() {
				c.m.lastReconnect.Store(int64(time.Since(lostAt)))
			}
			if !c.subscribe(ctx) {
				if ctx.Err() != nil {
					return // shutdown drops the connection
				}
				// Without its subscriptions the bridge would not hear
				// commands: drop the connection and try again later.
				c.m.connectFailures.Add(1)
				failing = true
				c.conns.drop()
				select {
				case <-c.lostCh:
				case <-ctx.Done():
					return
				}
			} else {
				c.ready()
				failing = false
				retry = 0
				select {
				case err := <-c.lostCh:
					lostAt = time.Now()
					c.gate.down()
					c.m.connected.Store(false)
					c.log.Warn("mqtt: connection lost, reconnecting", "broker", c.brokerURL, "err", err)
					c.lost()
				case <-ctx.Done():
					return
				}
			}
		}
		t := time.NewTimer(c.backoff.Delay(retry))
		retry++
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// subscribe makes the subscriptions after a connect and reports whether
// all of them are in place: paho reports a refused one (SUBACK 0x80) only
// in the token's result codes, not as an error.
func (c *connection) subscribe(ctx context.Context) bool {
	tok := c.client.SubscribeMultiple(c.filters, nil)
	t := time.NewTimer(subscribeTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
		c.log.Warn("mqtt: no SUBACK in time; reconnecting", "timeout", subscribeTimeout)
		return false
	case <-ctx.Done():
		return false
	}
	if err := tok.Error(); err != nil {
		c.log.Error("mqtt: subscribe failed; reconnecting", "err", err)
		return false
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		var refused []string
		for topic, code := range st.Result() {
			if code > 2 { // 0x80: refused (e.g. by the broker's ACL)
				refused = append(refused, topic)
			}
		}
		if len(refused) > 0 {
			slices.Sort(refused)
			c.log.Error("mqtt: the broker refused subscriptions (check its ACL for this user); reconnecting", "topics", refused, "client_id", c.clientID)
			return false
		}
	}
	return true
}

// ready runs after every successful connect and subscribe (so that
// "connected" means commands are heard): the bridge state goes out ahead of
// any backlog, the gate opens, and up queues the full re-publish behind it.
func (c *connection) ready() {
	c.out.pushFront(&outMsg{topic: c.will, payload: []byte(payloadOnline), qos: 1, retain: true, state: true})
	c.gate.up()
	c.m.connected.Store(true)
	c.up()
	c.log.Info("mqtt connected", "broker", c.brokerURL, "client_id", c.clientID, "prefix", c.prefix)
}

// gate tells the publisher (and the cluster) whether the broker is
// connected. Safe for concurrent use.
type gate struct {
	mu     sync.Mutex
	isOn   bool
	upCh   chan struct{} // closed while up
	downCh chan struct{} // closed while down
}

func (g *gate) init() {
	g.upCh, g.downCh = make(chan struct{}), make(chan struct{})
	close(g.downCh)
}

func (g *gate) up() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isOn {
		return
	}
	g.isOn = true
	close(g.upCh)
	g.downCh = make(chan struct{})
}

func (g *gate) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isOn {
		return
	}
	g.isOn = false
	close(g.downCh)
	g.upCh = make(chan struct{})
}

// state returns whether the gate is up, and the channel that is closed when
// that changes.
func (g *gate) state() (up bool, change <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isOn {
		return true, g.downCh
	}
	return false, g.upCh
}

func (g *gate) isUp() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.isOn
}
