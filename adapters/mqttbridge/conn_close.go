package mqttbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Shutdown tunables. shutdownFlush bounds waiting for the offline states
// to be acknowledged on shutdown; disconnectQuiesce is paho's grace (ms)
// for DISCONNECT. When the broker does not acknowledge in time the bridge
// closes the connection without DISCONNECT, so the broker publishes the
// Last Will (a DISCONNECT would make it discard it). Worst case:
// shutdownFlush, plus writeTimeout for a publish paho is stuck writing,
// well within main's 4 s.
const (
	shutdownFlush     = time.Second
	disconnectQuiesce = 250
	// shutdownConnectWait bounds waiting, on shutdown, for a connect attempt
	// in progress: closing its socket ends a tcp:// or ssl:// attempt at
	// once; a ws:// dial (paho's, not abortable) may take up to this.
	shutdownConnectWait = 3 * time.Second
	// lostWait bounds waiting for paho to report a connection we closed.
	lostWait = 2 * time.Second
)

// shutdown ends the connection after run has returned and the publisher
// has stopped: it publishes offline on each of the offline topics (the
// bridge state last, added here) straight to paho, past the in-flight
// window, and disconnects when the broker acknowledged them in time;
// otherwise it closes the connection without DISCONNECT so the broker
// publishes the Last Will. paho has let go of the connection when it
// returns.
func (c *connection) shutdown(offline []string) {
	clean := false
	if c.gate.isUp() {
		if clean = c.publishNow(append(offline, c.will), payloadOffline); !clean {
			c.log.Warn("mqtt: offline states not acknowledged before shutdown; closing the connection without DISCONNECT so the broker publishes the Last Will")
		}
	}
	if clean {
		c.client.Disconnect(disconnectQuiesce)
	} else {
		c.dropAndWait()
	}
	c.gate.down()
	c.m.connected.Store(false)
	c.log.Info("mqtt disconnected")
}

// publishNow publishes payload, retained at QoS 1, on every topic straight
// to paho, and reports whether the broker acknowledged all of them within
// shutdownFlush. On false the publishing goroutine has been told to stop;
// it ends (within writeTimeout) before publishNow returns.
func (c *connection) publishNow(topics []string, payload string) bool {
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
			toks = append(toks, c.client.Publish(topic, 1, true, []byte(payload)))
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
		c.conns.drop()
	}
	wg.Wait()
	return ok
}

// dropAndWait ends paho's connection, if it has one, without DISCONNECT
// (the broker then publishes the Last Will) and waits until paho has
// noticed, so none of its goroutines outlive Run.
func (c *connection) dropAndWait() {
	if c.client == nil || !c.client.IsConnectionOpen() {
		return
	}
	c.conns.drop()
	t := time.NewTimer(lostWait)
	defer t.Stop()
	select {
	case <-c.lostCh:
	case <-t.C:
		c.log.Warn("mqtt: connection did not close in time", "timeout", lostWait)
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
