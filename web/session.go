package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esp32gw/esp32gw/internal/atomicfile"
)

// Session limits (DESIGN.md "Security defaults").
const (
	// DefaultSessionTTL: a session unused this long is over.
	DefaultSessionTTL = 30 * 24 * time.Hour
	// sessionTouchEvery: a session's last use is updated (and saved) at most
	// this often, to spare the SD card.
	sessionTouchEvery = time.Minute
	// DefaultMaxSessions bounds the store; beyond it the least recently used goes.
	DefaultMaxSessions = 1000
	// sessionIDBytes is the random part of a session id (256 bits).
	sessionIDBytes = 32
	// maxCookieLen: a longer cookie value cannot be a session id and is
	// refused before any work (base64 of sessionIDBytes is 43 characters).
	maxCookieLen = 64
	// closeLoggedOut is the close code of a socket whose session ended
	// (logout, token rotated): 1008 policy violation, reason "logged out".
	closeLoggedOut = websocket.ClosePolicyViolation
)

// Roles: an admin may do everything; a viewer sees everything and may
// command nothing.
const (
	roleAdmin  = "admin"
	roleViewer = "viewer"
)

// identity is who a request is: its role and, for a cookie login, the hash
// of its session id ("" for a Bearer or ?token= request).
type identity struct {
	role    string
	session string
}

type identityKey struct{}

// session is one login as stored: never the id itself, only its hash.
type session struct {
	Hash     string    `json:"hash"`  // hex SHA-256 of the session id
	Role     string    `json:"role"`  // admin or viewer
	Grant    string    `json:"grant"` // fingerprint of the token that made it (see grantOf)
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
}

// sessionFile is sessions.json.
type sessionFile struct {
	Version  int        `json:"version"`
	Sessions []*session `json:"sessions"`
}

// sessionStore keeps sessions in memory and in path (mode 0600, replaced
// atomically). A session is valid only while the token that made it is in
// force (its grant matches), so a token changed while the gateway was down
// ends the sessions it made too. Safe for concurrent use; it starts no
// goroutines.
type sessionStore struct {
	path string // "" keeps sessions in memory only
	ttl  time.Duration
	max  int
	log  *slog.Logger

	mu     sync.Mutex
	byHash map[string]*session
	gen    uint64 // bumped by every change worth saving

	saveMu sync.Mutex // orders writes of the file
	saved  uint64     // the generation last written
}

func newSessionStore(path string, ttl time.Duration, max int, log *slog.Logger) *sessionStore {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if max <= 0 {
		max = DefaultMaxSessions
	}
	st := &sessionStore{path: path, ttl: ttl, max: max, log: log, byHash: map[string]*session{}}
	st.load()
	return st
}

// grantOf fingerprints a token, so a stored session names the token it came
// from without the token being stored twice.
func grantOf(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("esp32gw-grant\x00" + token))
	return hex.EncodeToString(sum[:8])
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// load reads the file; a damaged one is renamed aside (.corrupt-TIMESTAMP)
// and everyone logs in again.
func (st *sessionStore) load() {
	if st.path == "" {
		return
	}
	b, err := os.ReadFile(st.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			st.log.Warn("sessions not read: everyone logs in again", "err", err)
		}
		return
	}
	var f sessionFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		aside := fmt.Sprintf("%s.corrupt-%s", st.path, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(st.path, aside); rerr != nil {
			st.log.Warn("damaged sessions file not moved aside", "err", rerr)
		}
		st.log.Warn("sessions file is damaged: kept aside, everyone logs in again", "file", aside, "err", err)
		return
	}
	now := time.Now()
	for _, s := range f.Sessions {
		if s == nil || len(s.Hash) != 64 || (s.Role != roleAdmin && s.Role != roleViewer) || now.Sub(s.LastUsed) > st.ttl {
			continue
		}
		if _, err := hex.DecodeString(s.Hash); err != nil {
			continue
		}
		st.byHash[s.Hash] = s
	}
	st.evictLocked(st.max)
}

// create makes a session for role, made from the token with grant, and
// returns its id (the cookie value).
func (st *sessionStore) create(role, grant string) (string, error) {
	var raw [sessionIDBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	now := time.Now()
	st.mu.Lock()
	st.evictLocked(st.max - 1)
	st.byHash[hashID(id)] = &session{Hash: hashID(id), Role: role, Grant: grant, Created: now, LastUsed: now}
	st.gen++
	st.mu.Unlock()
	st.save()
	return id, nil
}

// evictLocked drops expired sessions, then the least recently used until at
// most keep remain.
func (st *sessionStore) evictLocked(keep int) {
	now := time.Now()
	for h, s := range st.byHash {
		if now.Sub(s.LastUsed) > st.ttl {
			delete(st.byHash, h)
			st.gen++
		}
	}
	for len(st.byHash) > keep {
		var oldest *session
		for _, s := range st.byHash {
			if oldest == nil || s.LastUsed.Before(oldest.LastUsed) {
				oldest = s
			}
		}
		delete(st.byHash, oldest.Hash)
		st.gen++
	}
}

// lookup returns the session of cookie value id when it is valid: known,
// not expired, and made from a token still in force (grants: role → the
// current token's grant). It notes the use, at most once a sessionTouchEvery.
func (st *sessionStore) lookup(id string, grants map[string]string) (identity, bool) {
	if id == "" || len(id) > maxCookieLen {
		return identity{}, false
	}
	h := hashID(id)
	now := time.Now()
	st.mu.Lock()
	s, ok := st.byHash[h]
	switch {
	case !ok:
		st.mu.Unlock()
		return identity{}, false
	case now.Sub(s.LastUsed) > st.ttl || s.Grant == "" || s.Grant != grants[s.Role]:
		delete(st.byHash, h)
		st.gen++
		st.mu.Unlock()
		st.save()
		return identity{}, false
	}
	touched := false
	if now.Sub(s.LastUsed) >= min(sessionTouchEvery, st.ttl/4) {
		s.LastUsed = now
		st.gen++
		touched = true
	}
	who := identity{role: s.Role, session: h}
	st.mu.Unlock()
	if touched {
		st.save()
	}
	return who, true
}

// end removes the session of cookie value id; it returns its hash, or "".
func (st *sessionStore) end(id string) string {
	if id == "" || len(id) > maxCookieLen {
		return ""
	}
	h := hashID(id)
	st.mu.Lock()
	_, ok := st.byHash[h]
	if ok {
		delete(st.byHash, h)
		st.gen++
	}
	st.mu.Unlock()
	if !ok {
		return ""
	}
	st.save()
	return h
}

// endRole removes every session of role ("" for all).
func (st *sessionStore) endRole(role string) {
	st.mu.Lock()
	for h, s := range st.byHash {
		if role == "" || s.Role == role {
			delete(st.byHash, h)
		}
	}
	st.gen++
	st.mu.Unlock()
	st.save()
}

// save writes the sessions as they are now, unless a newer write happened.
func (st *sessionStore) save() {
	if st.path == "" {
		return
	}
	st.saveMu.Lock()
	defer st.saveMu.Unlock()
	st.mu.Lock()
	gen := st.gen
	if gen == st.saved {
		st.mu.Unlock()
		return
	}
	f := sessionFile{Version: 1, Sessions: make([]*session, 0, len(st.byHash))}
	for _, s := range st.byHash {
		c := *s
		f.Sessions = append(f.Sessions, &c)
	}
	st.mu.Unlock()
	b, err := json.Marshal(f)
	if err == nil {
		err = atomicfile.Write(st.path, b)
	}
	if err != nil {
		st.log.Warn("sessions not saved", "err", err)
		return
	}
	st.saved = gen
}
