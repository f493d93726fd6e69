package mqttbridge

import "strings"

// Topic names under the configured prefix (DESIGN.md, "MQTT topics").
const (
	bridgeDevice = "bridge" // PREFIX/bridge/state
	topicState   = "state"
	topicStatus  = "status"
	topicMeta    = "meta"
	topicSet     = "set"
	topicResult  = "result"
	topicInfo    = "info" // PREFIX/dev/info: the board's attributes
	// The Home Assistant update entity's topics: PREFIX/dev/update/state
	// (its state), PREFIX/dev/update/install (install requests) and
	// PREFIX/dev/update/install/result (their answers).
	topicUpdate  = "update"
	topicInstall = "install"
	// Cluster liveness (additions to the contract's topics):
	// PREFIX/bridge/ping asks every gateway on the prefix to answer on
	// PREFIX/bridge/<gateway_id>/alive.
	topicPing  = "ping"
	topicAlive = "alive"

	payloadOnline  = "online"
	payloadOffline = "offline"
)

// reservedLabel reports whether a label cannot get its own value topic
// because PREFIX/<device>/<label> would be a topic the contract already
// gives another meaning (availability, metadata, commands, attributes).
func reservedLabel(label string) bool {
	return label == topicStatus || label == topicMeta || label == topicSet || label == topicInfo
}

// topics names every topic under the configured prefix and parses the
// incoming ones. It is a plain value: safe to copy and to use from any
// goroutine.
type topics struct{ prefix string }

// bridgeState is PREFIX/bridge/state: retained online, or offline as the
// Last Will and on clean shutdown.
func (t topics) bridgeState() string { return t.prefix + "/" + bridgeDevice + "/" + topicState }

// bridgeAll is the prefix of every PREFIX/bridge/… topic.
func (t topics) bridgeAll() string { return t.prefix + "/" + bridgeDevice + "/" }

// ping is PREFIX/bridge/ping (cluster liveness).
func (t topics) ping() string { return t.bridgeAll() + topicPing }

// alive is PREFIX/bridge/<gw>/alive, where gateway gw answers a ping.
func (t topics) alive(gw string) string { return t.bridgeAll() + gw + "/" + topicAlive }

// aliveGateway returns the gateway id of a PREFIX/bridge/<id>/alive topic.
func (t topics) aliveGateway(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, t.bridgeAll())
	if !ok {
		return "", false
	}
	gw, ok := strings.CutSuffix(rest, "/"+topicAlive)
	if !ok || strings.Contains(gw, "/") {
		return "", false
	}
	return gw, true
}

func (t topics) status(dev string) string       { return t.prefix + "/" + dev + "/" + topicStatus }
func (t topics) meta(dev string) string         { return t.prefix + "/" + dev + "/" + topicMeta }
func (t topics) value(dev, label string) string { return t.prefix + "/" + dev + "/" + label }
func (t topics) info(dev string) string         { return t.prefix + "/" + dev + "/" + topicInfo }

// updateState is the update entity's retained JSON state.
func (t topics) updateState(dev string) string {
	return t.prefix + "/" + dev + "/" + topicUpdate + "/" + topicState
}

// install is where Home Assistant asks to install the latest firmware.
func (t topics) install(dev string) string {
	return t.prefix + "/" + dev + "/" + topicUpdate + "/" + topicInstall
}

// installResult answers each install request.
func (t topics) installResult(dev string) string { return t.install(dev) + "/" + topicResult }

// installFilter matches every device's install topic.
func (t topics) installFilter() string { return t.install("+") }

// set is where a command for label goes; an empty label is an empty topic
// level (PREFIX/dev/set/), which PREFIX/+/set/+ still matches.
func (t topics) set(dev, label string) string {
	return t.prefix + "/" + dev + "/" + topicSet + "/" + label
}

// result is where the answer to a command on set(dev, label) goes.
func (t topics) result(dev, label string) string { return t.set(dev, label) + "/" + topicResult }

// subscriptions returns the filters the bridge subscribes to on every
// connect, with their QoS. Set topics are QoS 0 on purpose: the broker
// does not queue QoS 0 messages for an offline session, so commands sent
// while the gateway was away are never replayed later (contract: commands
// are never queued). In cluster mode it also takes other gateways' state
// (retained, re-sent on every subscribe, so QoS 0 loses nothing that
// matters and replays no stale backlog), the results of commands it
// forwards, and liveness answers (PREFIX/bridge/state and
// PREFIX/bridge/ping arrive through PREFIX/+/+).
func (t topics) subscriptions(cluster bool) map[string]byte {
	f := map[string]byte{t.prefix + "/+/" + topicSet + "/+": 0}
	if cluster {
		f[t.prefix+"/+/+"] = 0
		f[t.prefix+"/+/"+topicSet+"/+/"+topicResult] = 1
		f[t.bridgeAll()+"+/"+topicAlive] = 1
	}
	return f
}

// topicKind is what an incoming topic under the prefix means.
type topicKind int

const (
	tkOther   topicKind = iota
	tkSet               // PREFIX/dev/set/label
	tkResult            // PREFIX/dev/set/label/result
	tkMeta              // PREFIX/dev/meta
	tkStatus            // PREFIX/dev/status
	tkValue             // PREFIX/dev/label
	tkInfo              // PREFIX/dev/info
	tkInstall           // PREFIX/dev/update/install
)

// parse splits an incoming topic into what it means, its device and its
// label. Anything it does not recognise is tkOther: other prefixes, the
// bridge's own PREFIX/bridge/… topics (never a device named bridge), empty
// device levels, and topics with too many or too few levels. It does not
// validate ids or labels; callers do, where they accept them.
func (t topics) parse(topic string) (kind topicKind, dev, label string) {
	rest, ok := strings.CutPrefix(topic, t.prefix+"/")
	if !ok {
		return tkOther, "", ""
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 4 || parts[0] == bridgeDevice || parts[0] == "" {
		return tkOther, "", ""
	}
	dev = parts[0]
	switch {
	case len(parts) == 3 && parts[1] == topicSet:
		return tkSet, dev, parts[2]
	case len(parts) == 4 && parts[1] == topicSet && parts[3] == topicResult:
		return tkResult, dev, parts[2]
	case len(parts) == 2 && parts[1] == topicMeta:
		return tkMeta, dev, ""
	case len(parts) == 2 && parts[1] == topicStatus:
		return tkStatus, dev, ""
	case len(parts) == 2 && parts[1] == topicInfo:
		return tkInfo, dev, ""
	case len(parts) == 3 && parts[1] == topicUpdate && parts[2] == topicInstall:
		return tkInstall, dev, ""
	case len(parts) == 2 && parts[1] != topicSet:
		return tkValue, dev, parts[1]
	}
	return tkOther, "", ""
}
