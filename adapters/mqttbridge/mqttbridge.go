// Package mqttbridge mirrors the hub to an MQTT broker and takes commands
// from it (DESIGN.md, "MQTT topics"): every reading goes to
// PREFIX/<device>/<label>, availability to PREFIX/<device>/status and
// PREFIX/bridge/state (with a retained Last Will), metadata to
// PREFIX/<device>/meta; commands arrive on PREFIX/<device>/set/<label> and
// are answered on …/result. With homeassistant.enabled it publishes MQTT
// discovery configs; with cluster it imports the devices other gateways
// publish on the same broker and routes commands for them through their set
// topics.
//
// Run owns every goroutine the bridge starts (the connection loop, the pump
// from the hub, the publisher, the state dispatcher, the command
// dispatcher and its per-device workers) and returns only after all of them have exited. paho's own
// handlers never block: they hand messages to bounded channels.
package mqttbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/esp32gw/esp32gw/gateway"
)

// Tunables; each has its unit and its reason.
const (
	// Reconnect backoff: the first retry comes within 1 s (a jittered
	// 0.5–1 s), then the base doubles up to 30 s (contract: "first retry
	// within 1 s, jittered exponential backoff, cap 30 s, never gives up").
	backoffMin = time.Second
	backoffMax = 30 * time.Second

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

	// The backlog while the broker is away: at 20 readings/s, 10,000
	// messages hold more than 8 minutes; 8 MiB bounds memory on a Pi.
	defaultBacklogMsgs  = 10000
	defaultBacklogBytes = 8 << 20
	// inflightWindow bounds publishes handed to paho and not yet
	// acknowledged; they sit in paho's store across a reconnect.
	inflightWindow = 256
	// notConnectedPause is how long the publisher waits when paho says the
	// connection is gone before connectLoop noticed (a brief race).
	notConnectedPause = 100 * time.Millisecond

	// hubQueueLen is the bridge's subscriber queue in the hub; the pump
	// only moves messages into the outbox, so it keeps up easily.
	hubQueueLen = 4096
	// stateQueueTopics bounds the distinct topics of state messages from
	// the broker awaiting dispatch; a newer message on a queued topic
	// replaces the older one, so only a flood of new topics drops (counted).
	stateQueueTopics = 4096
	// setQueueLen bounds commands from set topics awaiting the dispatcher;
	// beyond it a command is answered "gateway busy" at once.
	setQueueLen = 256
	// commandQueueLen bounds each device's commands waiting for its worker;
	// beyond it a command is answered "gateway busy".
	commandQueueLen = 32
	// commandBudget is how long an MQTT command may take from its arrival
	// to its answer: one that waited longer is not run ("gateway busy: the
	// command waited too long"), one running is cut off then. It keeps the
	// contract's "command answer within 2 s".
	commandBudget = gateway.CommandTimeout
	// minCommandTime is the least of its budget a command must have left
	// to be sent to the board at all; with less it is answered busy.
	minCommandTime = 100 * time.Millisecond

	// maxInboundPayload bounds any message from the broker (the board frame
	// limit); larger ones are dropped and counted.
	maxInboundPayload = 64 << 10
	// remoteMetaWait is how long a remote device's status and values wait
	// for its meta before the entry is forgotten.
	remoteMetaWait = time.Minute
	// maxPendingBytes bounds the values of remote devices held while they
	// wait for their meta or their status, all devices together.
	maxPendingBytes = 8 << 20

	// remoteResultTimeout bounds waiting for another gateway's result; it
	// is below gateway.CommandTimeout so the browser gets our clear error.
	remoteResultTimeout = 1500 * time.Millisecond
	// probeWait is how long, after a ping, the gateways whose imported
	// devices are online have to answer on their alive topic before those
	// devices are marked offline.
	probeWait = 3 * time.Second
	// joinSettle is how long after a (re)connect the retained statuses of
	// other gateways' devices have to arrive before we ping their gateways:
	// a gateway that died while we were away left its devices "online".
	joinSettle = time.Second
	// maxRemoteDevices bounds what cluster mode imports.
	maxRemoteDevices = 1024

	// shutdownFlush bounds waiting for the offline states to be acknowledged
	// on shutdown; disconnectQuiesce is paho's grace for DISCONNECT. When
	// the broker does not acknowledge in time the bridge closes the
	// connection without DISCONNECT, so the broker publishes the Last Will
	// (a DISCONNECT would make it discard it). Worst case: shutdownFlush,
	// plus writeTimeout for a publish paho is stuck writing, well within
	// main's 4 s.
	shutdownFlush     = time.Second
	disconnectQuiesce = 250
	// shutdownConnectWait bounds waiting, on shutdown, for a connect attempt
	// in progress: closing its socket ends a tcp:// or ssl:// attempt at
	// once; a ws:// dial (paho's, not abortable) may take up to this.
	shutdownConnectWait = 3 * time.Second
	// lostWait bounds waiting for paho to report a connection we closed.
	lostWait = 2 * time.Second
)

// Bridge is the MQTT side of the gateway. Create it with New and start it
// with Run, once.
type Bridge struct {
	cfg      gateway.MQTTConfig
	hub      *gateway.Hub
	log      *slog.Logger
	gw       string // this gateway's id
	topics   topics
	haPrefix string
	clientID string
	qos      byte

	// Knobs tests may lower before Run.
	backoffMin, backoffMax time.Duration
	resultTimeout          time.Duration
	cmdBudget              time.Duration
	window                 int // in-flight publishes, inflightWindow
	remoteMetaWait         time.Duration
	probeWait, joinSettle  time.Duration
	tlsConfig              *tls.Config // nil: system roots for ssl://

	out       *outbox
	gate      gate
	waiters   waiters
	conns     conns  // paho's network connection, to abort or drop it
	brokerURL string // cfg.Broker with any password redacted, for logs

	states   *stateQueue   // metas, statuses, values from the broker; coalescing
	sets     chan setMsg   // commands from set topics
	resync   chan struct{} // capacity 1: (re)connected, re-publish everything
	haOnline chan struct{} // capacity 1: Home Assistant restarted
	joined   chan struct{} // capacity 1: (re)connected; cluster mode re-checks who is alive

	m metrics

	pendingBytes int // dispatch's: sum of remoteDev.pendingBytes
}

// metrics are the bridge's counters for /metrics.
type metrics struct {
	connected       atomic.Bool
	connects        atomic.Uint64
	connectFailures atomic.Uint64
	published       atomic.Uint64
	publishErrors   atomic.Uint64
	inboundDropped  atomic.Uint64
	inboundRejected atomic.Uint64
	commandsOK      atomic.Uint64
	commandsErr     atomic.Uint64
	retainedIgnored atomic.Uint64
	remoteDevices   atomic.Int64
	remotePending   atomic.Int64
	lastReconnect   atomic.Int64 // ns from connection loss to the next connect
}

// New returns a bridge for hub; Run connects it. The gateway id names this
// gateway in device metadata and keeps cluster mode from importing its own
// devices.
func New(cfg gateway.MQTTConfig, hub *gateway.Hub, log *slog.Logger) *Bridge {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gw := hub.GatewayID()
	clientID := cfg.ClientID
	if cfg.Cluster && clientID == gateway.DefaultConfig().MQTT.ClientID && gw != "" {
		// Two gateways with the same client id would take turns kicking
		// each other off the broker; the default becomes per-gateway.
		clientID += "-" + gw
	}
	qos := byte(1)
	if cfg.QoS >= 0 && cfg.QoS <= 2 {
		qos = byte(cfg.QoS)
	}
	prefix := cfg.TopicPrefix
	if prefix == "" {
		prefix = "esp32gw"
	}
	haPrefix := cfg.HomeAssistant.Prefix
	if haPrefix == "" {
		haPrefix = "homeassistant"
	}
	b := &Bridge{
		cfg: cfg, hub: hub, log: log.With("component", "mqtt"), gw: gw,
		topics: topics{prefix}, haPrefix: haPrefix, clientID: clientID, qos: qos,
		backoffMin: backoffMin, backoffMax: backoffMax, resultTimeout: remoteResultTimeout,
		cmdBudget: commandBudget, window: inflightWindow, remoteMetaWait: remoteMetaWait,
		probeWait: probeWait, joinSettle: joinSettle,
		out:      newOutbox(defaultBacklogMsgs, defaultBacklogBytes),
		states:   newStateQueue(stateQueueTopics),
		sets:     make(chan setMsg, setQueueLen),
		resync:   make(chan struct{}, 1),
		haOnline: make(chan struct{}, 1),
		joined:   make(chan struct{}, 1),
		waiters:  waiters{m: map[string][]*waiter{}},
	}
	b.gate.init()
	b.conns.init()
	b.brokerURL = redactURL(cfg.Broker)
	return b
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

// Run keeps the bridge connected until ctx ends, then publishes offline
// states and disconnects before it returns. The gateway keeps serving while
// the broker is away: Run retries for ever and the backlog is bounded.
func (b *Bridge) Run(ctx context.Context) error {
	lost := make(chan error, 1)
	client := mqtt.NewClient(b.clientOptions(lost))

	// Workers stop when workCtx ends; the publisher lives a little longer
	// (pubCtx) to send the offline states.
	workCtx, stopWork := context.WithCancel(context.Background())
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	defer stopWork()
	var work, pub sync.WaitGroup
	work.Go(func() { b.pump(workCtx) })
	work.Go(func() { b.commands(workCtx) })
	work.Go(func() { b.dispatch(workCtx) })
	pub.Go(func() { b.publisher(pubCtx, client) })

	b.connectLoop(ctx, client, lost)

	// Shutdown: stop taking work, tell the broker we are going, disconnect.
	// The publisher stops first, so nothing it still holds (a queued
	// "online") can overtake the offline states, which go to paho directly,
	// past the in-flight window.
	stopWork()
	work.Wait()
	stopPub()
	pub.Wait()
	clean := false
	if b.gate.isUp() {
		if clean = b.sendOfflineStates(client); !clean {
			b.log.Warn("mqtt: offline states not acknowledged before shutdown; closing the connection without DISCONNECT so the broker publishes the Last Will")
		}
	}
	if clean {
		client.Disconnect(disconnectQuiesce)
	} else {
		b.dropConnection(client, lost)
	}
	b.gate.down()
	b.m.connected.Store(false)
	b.log.Info("mqtt disconnected")
	return nil
}

// sendOfflineStates publishes every local device's offline status and then
// the bridge's, straight to paho, and reports whether the broker
// acknowledged all of them within shutdownFlush. On false the publishing
// goroutine has been told to stop; it ends within writeTimeout.
func (b *Bridge) sendOfflineStates(client mqtt.Client) bool {
	_, devices := b.hub.Snapshot()
	topics := make([]string, 0, len(devices)+1)
	for _, d := range devices {
		if !d.Remote && d.ID != bridgeDevice {
			topics = append(topics, b.topics.status(d.ID))
		}
	}
	topics = append(topics, b.topics.bridgeState())

	giveUp := make(chan struct{})
	result := make(chan bool, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		toks := make([]mqtt.Token, 0, len(topics))
		for _, topic := range topics {
			select {
			case <-giveUp:
				result <- false
				return
			default:
			}
			toks = append(toks, client.Publish(topic, 1, true, []byte(payloadOffline)))
		}
		for _, tok := range toks {
			select {
			case <-tok.Done():
				if tok.Error() != nil {
					result <- false
					return
				}
			case <-giveUp:
				result <- false
				return
			}
		}
		result <- true
	})
	t := time.NewTimer(shutdownFlush)
	defer t.Stop()
	ok := false
	select {
	case ok = <-result:
	case <-t.C:
	}
	close(giveUp)
	if !ok {
		// Unblock a publish paho is stuck writing before waiting for it.
		b.conns.drop()
	}
	wg.Wait()
	return ok
}

// dropConnection ends paho's connection, if it has one, without
// DISCONNECT (the broker then publishes the Last Will) and waits until
// paho has noticed, so none of its goroutines outlive Run.
func (b *Bridge) dropConnection(client mqtt.Client, lost <-chan error) {
	if !client.IsConnectionOpen() {
		return
	}
	b.conns.drop()
	t := time.NewTimer(lostWait)
	defer t.Stop()
	select {
	case <-lost:
	case <-t.C:
		b.log.Warn("mqtt: connection did not close in time", "timeout", lostWait)
	}
}

// conns keeps a handle on the network connection paho uses (paho's
// CustomOpenConnectionFn), so the bridge can abort a connect in progress
// at shutdown and end a connection without sending DISCONNECT.
type conns struct {
	ctx     context.Context // ends at shutdown: aborts dials
	cancel  context.CancelFunc
	mu      sync.Mutex
	raw     net.Conn     // the current TCP (or WebSocket) connection
	dropped *atomic.Bool // set before raw is closed by drop
}

// errDropped is what paho reads from a connection the bridge dropped. paho
// ignores "use of closed network connection" (it takes that for its own
// close) and would not report the loss; this error it does.
var errDropped = errors.New("connection closed by the gateway")

// droppable is the connection paho uses: after drop, its errors say so.
type droppable struct {
	net.Conn
	dropped *atomic.Bool
}

func (c droppable) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.dropped.Load() {
		err = errDropped
	}
	return n, err
}

func (c droppable) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.dropped.Load() {
		err = errDropped
	}
	return n, err
}

func (c *conns) init() { c.ctx, c.cancel = context.WithCancel(context.Background()) }

// open is paho's OpenConnectionFunc: tcp://, ssl:// (and its aliases),
// ws:// and wss://, as paho's own; the environment's proxy settings are
// not used.
func (c *conns) open(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, o.ConnectTimeout)
	defer cancel()
	var conn, raw net.Conn
	var err error
	var d net.Dialer
	switch uri.Scheme {
	case "tcp", "mqtt":
		raw, err = d.DialContext(ctx, "tcp", uri.Host)
		conn = raw
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		raw, err = d.DialContext(ctx, "tcp", uri.Host)
		if err == nil {
			tc := &tls.Config{MinVersion: tls.VersionTLS12}
			if o.TLSConfig != nil {
				tc = o.TLSConfig.Clone()
			}
			if tc.ServerName == "" {
				tc.ServerName = uri.Hostname()
			}
			tconn := tls.Client(raw, tc)
			if err = tconn.HandshakeContext(ctx); err != nil {
				raw.Close()
			}
			conn = tconn
		}
	case "ws", "wss":
		u := *uri
		u.User = nil // gorilla refuses URLs with credentials
		var tc *tls.Config
		if uri.Scheme == "wss" {
			tc = o.TLSConfig
		}
		raw, err = mqtt.NewWebsocket(u.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
		conn = raw
	default:
		err = fmt.Errorf("unsupported scheme %q", uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		raw.Close()
		return nil, errors.New("gateway shutting down")
	}
	c.raw, c.dropped = raw, new(atomic.Bool)
	return droppable{conn, c.dropped}, nil
}

// drop closes the current connection: paho sees a connection loss, and
// the broker (no DISCONNECT) publishes the Last Will.
func (c *conns) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw != nil {
		c.dropped.Store(true)
		c.raw.Close()
	}
}

// abort stops any dial in progress and closes the current connection;
// every later dial fails at once.
func (c *conns) abort() {
	c.cancel()
	c.drop()
}

// clientOptions builds paho's options. AutoReconnect and ConnectRetry are
// off: connectLoop owns reconnection (jittered backoff, capped at 30 s,
// stoppable at once by ctx) and calls Connect on the same client, so paho's
// store keeps unacknowledged QoS 1 publishes and resends them (CleanSession
// false, fixed client id: the broker keeps our session across outages).
func (b *Bridge) clientOptions(lost chan<- error) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	o.AddBroker(b.cfg.Broker)
	o.SetClientID(b.clientID)
	o.SetUsername(b.cfg.Username)
	o.SetPassword(b.cfg.Password)
	o.SetCleanSession(false)
	// The ordered store resends unacknowledged publishes in the order they
	// were made (the default MemoryStore resends in map order).
	o.SetStore(mqtt.NewOrderedMemoryStore())
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false) // connectLoop subscribes on every connect
	// Order stays on: onMessage never blocks (it only hands off to bounded
	// channels), and ordered delivery keeps a remote device's status and
	// values in the order they were published.
	o.SetOrderMatters(true)
	o.SetKeepAlive(keepAlive)
	o.SetPingTimeout(pingTimeout)
	o.SetConnectTimeout(connectTimeout)
	o.SetWriteTimeout(writeTimeout)
	o.SetBinaryWill(b.topics.bridgeState(), []byte(payloadOffline), 1, true)
	o.SetCustomOpenConnectionFn(b.conns.open)
	o.SetDefaultPublishHandler(b.onMessage)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	if u, err := url.Parse(b.cfg.Broker); err == nil {
		switch u.Scheme {
		case "ssl", "tls", "mqtts", "tcps", "wss":
			tc := b.tlsConfig
			if tc == nil {
				tc = &tls.Config{MinVersion: tls.VersionTLS12}
				if b.cfg.CAFile != "" {
					// Validated when the config was loaded; a file that has
					// gone since falls back to the system roots, loudly.
					pool, err := gateway.LoadCAFile(b.cfg.CAFile)
					if err != nil {
						b.log.Error("mqtt.ca_file", "err", err)
					}
					tc.RootCAs = pool
				}
			}
			o.SetTLSConfig(tc)
		}
	}
	return o
}

// connectLoop connects, serves the connection until it is lost, backs off
// and connects again, until ctx ends. It logs state changes once, not every
// attempt. A connection whose subscriptions failed is dropped and counts as
// a failed attempt. When it returns, paho is not in the middle of a connect.
func (b *Bridge) connectLoop(ctx context.Context, client mqtt.Client, lost <-chan error) {
	delay := b.backoffMin
	failing := false
	var lostAt time.Time
	for {
		tok := client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			// Close the socket of the attempt (paho's handshake fails at
			// once) and wait for paho to finish, so none of its goroutines
			// outlive Run.
			b.conns.abort()
			if !tok.WaitTimeout(shutdownConnectWait) {
				b.log.Warn("mqtt: connect attempt still running at shutdown", "broker", b.brokerURL)
			}
			return
		}
		if err := tok.Error(); err != nil {
			b.m.connectFailures.Add(1)
			if !failing {
				b.log.Warn("mqtt: cannot connect, retrying with backoff", "broker", b.brokerURL, "err", err)
				failing = true
			} else {
				b.log.Debug("mqtt: connect failed", "broker", b.brokerURL, "err", err)
			}
		} else {
			b.m.connects.Add(1)
			if !lostAt.IsZero() {
				b.m.lastReconnect.Store(int64(time.Since(lostAt)))
			}
			if !b.onConnected(ctx, client) {
				if ctx.Err() != nil {
					return // Run drops the connection
				}
				// Without its subscriptions the bridge would not hear
				// commands: drop the connection and try again later.
				b.m.connectFailures.Add(1)
				failing = true
				b.conns.drop()
				select {
				case <-lost:
				case <-ctx.Done():
					return
				}
			} else {
				failing = false
				delay = b.backoffMin
				select {
				case err := <-lost:
					lostAt = time.Now()
					b.gate.down()
					b.m.connected.Store(false)
					b.log.Warn("mqtt: connection lost, reconnecting", "broker", b.brokerURL, "err", err)
					b.remoteLinksDown("gateway lost its MQTT broker connection")
				case <-ctx.Done():
					return
				}
			}
		}
		// Jitter: wait between half and all of the current base.
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(delay*2, b.backoffMax)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// onConnected runs after every successful connect: subscriptions first (so
// that "connected" means commands are heard), then the bridge state ahead
// of any backlog, then a full re-publish (statuses, metas, last values,
// discovery) behind it. It returns false, leaving the gate closed, when a
// subscription failed: paho reports a refused one (SUBACK 0x80) only in
// the token's result codes, not as an error.
func (b *Bridge) onConnected(ctx context.Context, client mqtt.Client) bool {
	filters := b.topics.subscriptions(b.cfg.Cluster)
	if b.cfg.HomeAssistant.Enabled {
		filters[b.haPrefix+"/status"] = 0
	}
	tok := client.SubscribeMultiple(filters, nil)
	t := time.NewTimer(subscribeTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
		b.log.Warn("mqtt: no SUBACK in time; reconnecting", "timeout", subscribeTimeout)
		return false
	case <-ctx.Done():
		return false
	}
	if err := tok.Error(); err != nil {
		b.log.Error("mqtt: subscribe failed; reconnecting", "err", err)
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
			b.log.Error("mqtt: the broker refused subscriptions (check its ACL for this user); reconnecting", "topics", refused, "client_id", b.clientID)
			return false
		}
	}

	b.out.pushFront(&outMsg{topic: b.topics.bridgeState(), payload: []byte(payloadOnline), qos: 1, retain: true, state: true})
	b.gate.up()
	b.m.connected.Store(true)
	for _, ch := range []chan struct{}{b.resync, b.joined} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	b.log.Info("mqtt connected", "broker", b.brokerURL, "client_id", b.clientID, "prefix", b.topics.prefix)
	return true
}

// gate tells the publisher whether the broker is connected.
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

// inflight is one publish handed to paho.
type inflight struct {
	tok mqtt.Token
	m   *outMsg
}

// publisher drains the outbox into paho while the broker is connected,
// keeping at most inflightWindow publishes unacknowledged. A publish paho
// refused because the connection had just gone is put back at the front.
func (b *Bridge) publisher(ctx context.Context, client mqtt.Client) {
	var window []inflight
	reap := func(block bool, change <-chan struct{}) {
		for len(window) > 0 {
			f := window[0]
			if block {
				select {
				case <-f.tok.Done():
				case <-change:
					return
				case <-ctx.Done():
					return
				}
			} else {
				select {
				case <-f.tok.Done():
				default:
					return
				}
			}
			window = window[1:]
			b.finish(f)
			block = false
		}
	}
	for {
		up, change := b.gate.state()
		if !up {
			select {
			case <-change:
				continue
			case <-ctx.Done():
				return
			}
		}
		reap(false, nil)
		if len(window) >= b.window {
			reap(true, change)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		m, ok := b.out.pop()
		if !ok {
			var head <-chan struct{}
			if len(window) > 0 {
				head = window[0].tok.Done()
			}
			select {
			case <-b.out.notify:
			case <-head:
			case <-change:
			case <-ctx.Done():
				return
			}
			continue
		}
		if !m.expires.IsZero() && time.Now().After(m.expires) {
			continue // nobody waits for it any more
		}
		tok := client.Publish(m.topic, m.qos, m.retain, m.payload)
		if done(tok) && errors.Is(tok.Error(), mqtt.ErrNotConnected) {
			// The connection is gone and connectLoop has not closed the
			// gate yet: put it back and wait for that instead of spinning.
			b.out.pushFront(m)
			t := time.NewTimer(notConnectedPause)
			select {
			case <-change:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		window = append(window, inflight{tok, m})
	}
}

// finish accounts for one completed publish.
func (b *Bridge) finish(f inflight) {
	err := f.tok.Error()
	switch {
	case err == nil:
		b.m.published.Add(1)
	case errors.Is(err, mqtt.ErrNotConnected):
		// Never reached paho's store: try again after the reconnect.
		b.out.pushFront(f.m)
	default:
		// "publish was broken by timeout": paho stored it and resends it
		// on reconnect. Anything else is lost; count it.
		b.m.publishErrors.Add(1)
		b.log.Debug("mqtt publish failed", "topic", f.m.topic, "err", err)
	}
}

// done reports whether tok has completed, without waiting.
func done(tok mqtt.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}
