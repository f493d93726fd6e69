// Package mosquittotest runs a real mosquitto broker for tests: each Start
// launches its own process on a free loopback port with its own temp config
// (persistence, TLS and passwords when asked), never the system broker. The
// test owns the process: Stop, Kill and Restart act on it by pid, and the
// test's Cleanup kills it and reaps the goroutine that reads its output.
//
// Proxy puts a TCP proxy in front of a broker that a test can freeze, to
// play a broker (or network) that stops answering.
//
// When the mosquitto binary is absent the test is skipped, unless the CI
// environment variable is set: then it fails, because CI must run every test.
package mosquittotest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long mosquitto may take to say it is running.
const startTimeout = 10 * time.Second

// stopTimeout bounds how long a stopped broker may take to exit (it writes
// its persistence file on SIGTERM).
const stopTimeout = 10 * time.Second

// resignal is how often Stop repeats its signal while the broker runs.
const resignal = 250 * time.Millisecond

// Options choose what the broker does.
type Options struct {
	// Persistence keeps sessions, queued messages and retained messages
	// across Stop/Restart (written on SIGTERM; lost on Kill, as with a crash).
	Persistence bool
	// TLS makes the listener speak TLS with a fresh self-signed certificate
	// for 127.0.0.1 and localhost; CAFile holds it for clients to trust.
	TLS bool
	// Users, when set, turns anonymous access off and accepts only these
	// username → password pairs (needs mosquitto_passwd).
	Users map[string]string
}

// Broker is one mosquitto process owned by a test.
type Broker struct {
	t      testing.TB
	opts   Options
	bin    string
	Dir    string // config, persistence and certificates
	Port   int
	CAFile string // PEM certificate to trust (TLS only)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logs   strings.Builder
}

// Binary returns the mosquitto path, skipping the test (or failing it
// when CI is set) when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, c := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, serr := os.Stat(c); serr == nil {
				return c
			}
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto is not installed, and CI is set: .ci/run must install it")
		}
		t.Skip("mosquitto is not installed; skipping (apt-get install mosquitto to run this test)")
	}
	return p
}

// Start runs a broker on a free loopback port and waits until it accepts
// connections. The test's Cleanup kills it.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	b := &Broker{t: t, opts: o, bin: Binary(t), Dir: t.TempDir()}
	if o.TLS {
		b.writeCert()
	}
	if len(o.Users) > 0 {
		b.writePasswords()
	}
	t.Cleanup(b.Kill)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("mosquittotest: free port: %v", err)
		}
		b.Port = port
		b.writeConfig()
		if lastErr = b.launch(); lastErr == nil {
			return b
		}
		// Another process took the port between our probe and mosquitto's bind.
	}
	t.Fatalf("mosquittotest: broker did not start: %v\n%s", lastErr, b.Logs())
	return nil
}

// URL is the broker URL a client dials: tcp://127.0.0.1:PORT, or ssl://.
func (b *Broker) URL() string {
	scheme := "tcp"
	if b.opts.TLS {
		scheme = "ssl"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.Port)
}

// Addr is 127.0.0.1:PORT.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)) }

// Logs is what the broker has logged so far, across restarts.
func (b *Broker) Logs() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

// Running reports whether the broker process is up.
func (b *Broker) Running() bool {
	b.mu.Lock()
	exited := b.exited
	b.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Stop ends the broker with SIGTERM (it saves its persistence file) and
// waits for it to exit.
func (b *Broker) Stop() { b.signal(syscall.SIGTERM) }

// Kill ends the broker with SIGKILL, as a crash or power loss would, and
// waits for it to exit. Safe to call when it is not running.
func (b *Broker) Kill() { b.signal(syscall.SIGKILL) }

// Restart starts the broker again on the same port with the same config
// (and persistence file) after Stop or Kill.
func (b *Broker) Restart() {
	b.t.Helper()
	if b.Running() {
		b.t.Fatal("mosquittotest: Restart while the broker runs; Stop or Kill it first")
	}
	var err error
	// The port was ours a moment ago; mosquitto sets SO_REUSEADDR, but retry
	// a few times in case the kernel has not released it yet.
	for attempt := 0; attempt < 5; attempt++ {
		if err = b.launch(); err == nil {
			return
		}
	}
	b.t.Fatalf("mosquittotest: restart on port %d: %v\n%s", b.Port, err, b.Logs())
}

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	// mosquitto 2.0 sets its run flag after logging "running", so a SIGTERM
	// that lands in between is forgotten: repeat it until the process exits.
	deadline := time.After(stopTimeout)
	tick := time.NewTicker(resignal)
	defer tick.Stop()
	for {
		_ = cmd.Process.Signal(sig)
		select {
		case <-exited:
			return
		case <-tick.C:
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			b.t.Errorf("mosquittotest: broker ignored %v for %v; killed it", sig, stopTimeout)
			return
		}
	}
}

// launch starts the process and waits until it logs that it is running.
// The goroutine that reads its output ends when the process exits, and
// closes exited after Wait returns.
func (b *Broker) launch() error {
	cmd := exec.Command(b.bin, "-c", filepath.Join(b.Dir, "mosquitto.conf"))
	cmd.Dir = b.Dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", b.bin, err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			line := sc.Text()
			b.mu.Lock()
			b.logs.WriteString(line + "\n")
			b.mu.Unlock()
			if !said && strings.Contains(line, " running") {
				said = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("mosquitto exited during start (port %d)", b.Port)
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("mosquitto did not report running within %v", startTimeout)
	}
}

func (b *Broker) writeConfig() {
	var c strings.Builder
	fmt.Fprintf(&c, "# written by internal/mosquittotest\n")
	fmt.Fprintf(&c, "user root\n") // never drop to the mosquitto user: the temp dir is ours
	fmt.Fprintf(&c, "listener %d 127.0.0.1\n", b.Port)
	if len(b.opts.Users) > 0 {
		fmt.Fprintf(&c, "allow_anonymous false\npassword_file %s\n", filepath.Join(b.Dir, "passwd"))
	} else {
		fmt.Fprintf(&c, "allow_anonymous true\n")
	}
	if b.opts.TLS {
		fmt.Fprintf(&c, "certfile %s\nkeyfile %s\n", filepath.Join(b.Dir, "cert.pem"), filepath.Join(b.Dir, "key.pem"))
	}
	if b.opts.Persistence {
		fmt.Fprintf(&c, "persistence true\npersistence_location %s/\nautosave_interval 60\n", b.Dir)
	} else {
		fmt.Fprintf(&c, "persistence false\n")
	}
	fmt.Fprintf(&c, "max_queued_messages 10000\n")
	fmt.Fprintf(&c, "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\nlog_timestamp_format %%H:%%M:%%S\n")
	if err := os.WriteFile(filepath.Join(b.Dir, "mosquitto.conf"), []byte(c.String()), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

// writeCert makes a self-signed certificate for 127.0.0.1 and localhost.
func (b *Broker) writeCert() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mosquittotest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.t.Fatal(err)
	}
	b.CAFile = filepath.Join(b.Dir, "cert.pem")
	if err := os.WriteFile(b.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

func (b *Broker) writePasswords() {
	tool, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		if os.Getenv("CI") != "" {
			b.t.Fatalf("mosquitto_passwd is not installed, and CI is set")
		}
		b.t.Skip("mosquitto_passwd is not installed; skipping")
	}
	path := filepath.Join(b.Dir, "passwd")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		b.t.Fatal(err)
	}
	for user, pass := range b.opts.Users {
		if out, err := exec.Command(tool, "-b", path, user, pass).CombinedOutput(); err != nil {
			b.t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Proxy is a TCP proxy between clients and a broker. The test owns it: its
// Cleanup closes the listener and every connection and waits for the
// goroutines that copy bytes.
type Proxy struct {
	ln       net.Listener
	target   string
	scheme   string
	frozen   atomic.Bool
	refuse   atomic.Bool
	mu       sync.Mutex
	closed   bool
	conns    []net.Conn
	wg       sync.WaitGroup
	accepted atomic.Int64
}

// StartProxy listens on a free loopback port and forwards each connection
// to b.
func StartProxy(t testing.TB, b *Broker) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mosquittotest: proxy listen: %v", err)
	}
	scheme := "tcp"
	if b.opts.TLS {
		scheme = "ssl"
	}
	p := &Proxy{ln: ln, target: b.Addr(), scheme: scheme}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's broker URL.
func (p *Proxy) URL() string { return p.scheme + "://" + p.ln.Addr().String() }

// Accepted is how many client connections the proxy has taken.
func (p *Proxy) Accepted() int { return int(p.accepted.Load()) }

// FreezeDownstream stops passing bytes from the broker to clients (they
// are discarded): the broker's acknowledgements and pings never arrive,
// while what clients send still reaches it. When a client closes its
// connection, the proxy closes the broker side without sending anything
// more, as a dead network would.
func (p *Proxy) FreezeDownstream() { p.frozen.Store(true) }

// RefuseSubscriptions, while on, rewrites every return code of the
// broker's SUBACKs to 0x80 (refused), as a broker's ACL would (Mosquitto's
// default ACL never refuses a subscription). Plain tcp:// only.
func (p *Proxy) RefuseSubscriptions(on bool) { p.refuse.Store(on) }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(up, c, false) })
		p.wg.Go(func() { p.pipe(c, up, true) })
	}
}

// pipe copies from src to dst until either fails, then closes both.
func (p *Proxy) pipe(dst, src net.Conn, downstream bool) {
	defer dst.Close()
	defer src.Close()
	if downstream && p.scheme == "tcp" {
		p.packets(dst, src)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !(downstream && p.frozen.Load()) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// packets copies MQTT packets from the broker to a client, one at a time,
// so that SUBACKs can be rewritten.
func (p *Proxy) packets(dst, src net.Conn) {
	r := bufio.NewReader(src)
	for {
		// Fixed header: type and flags, then the remaining length as a
		// variable-length integer of up to 4 bytes.
		head := []byte{0}
		var err error
		if head[0], err = r.ReadByte(); err != nil {
			return
		}
		n, shift := 0, 0
		for i := 0; ; i++ {
			c, err := r.ReadByte()
			if err != nil || i == 4 {
				return
			}
			head = append(head, c)
			n |= int(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				break
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if head[0]>>4 == 9 && p.refuse.Load() { // SUBACK: packet id, then one code per filter
			for i := 2; i < len(body); i++ {
				body[i] = 0x80
			}
		}
		if p.frozen.Load() {
			continue
		}
		if _, err := dst.Write(append(head, body...)); err != nil {
			return
		}
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
