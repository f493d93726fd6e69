package ota

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/esp32gw/esp32gw/adapters/ota/espimage"
	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/atomicfile"
)

// Firmware is one stored image as the API shows it.
type Firmware struct {
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Chip     string `json:"chip"`
	Project  string `json:"project"`
	Version  string `json:"version"`
	IDF      string `json:"idf"`
	Built    string `json:"built"`
	Uploaded string `json:"uploaded"` // RFC 3339, milliseconds

	uploaded time.Time
}

// Store keeps firmware images in a directory (state_dir/firmware) as
// SHA256.bin, each with a SHA256.json sidecar holding its parsed metadata and
// upload time. Images are streamed to and from disk, never held in memory.
// It is safe for concurrent use and starts no goroutines.
type Store struct {
	dir string
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	items map[string]Firmware
}

// OpenStore reads the images kept in dir (created when missing). A sidecar
// or image that cannot be read is logged and left out; upload leftovers are
// removed.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("firmware store %s: %w", dir, err)
	}
	s := &Store{dir: dir, log: log, now: time.Now, items: map[string]Firmware{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("firmware store %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".upload-") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		sum, ok := strings.CutSuffix(name, ".json")
		if !ok || !validSHA(sum) {
			continue
		}
		fw, err := s.load(sum)
		if err != nil {
			log.Warn("firmware store: image left out", "sha256", sum, "err", err)
			continue
		}
		s.items[sum] = fw
	}
	return s, nil
}

func (s *Store) load(sum string) (Firmware, error) {
	var fw Firmware
	b, err := os.ReadFile(filepath.Join(s.dir, sum+".json"))
	if err != nil {
		return fw, err
	}
	if err := json.Unmarshal(b, &fw); err != nil {
		return fw, fmt.Errorf("sidecar: %w", err)
	}
	st, err := os.Stat(s.path(sum))
	if err != nil {
		return fw, err
	}
	if fw.SHA256 != sum || st.Size() != fw.Size {
		return fw, fmt.Errorf("sidecar does not match the image (size %d, file %d)", fw.Size, st.Size())
	}
	fw.uploaded, _ = time.Parse(time.RFC3339Nano, fw.Uploaded)
	return fw, nil
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func (s *Store) path(sum string) string { return filepath.Join(s.dir, sum+".bin") }

// Add streams an image from r to disk while hashing it, parses its headers
// and keeps it. Bad data (not an app image, truncated, unknown chip, over
// 8 MiB) gives an error wrapping espimage.ErrInvalid. An image already
// stored is kept as it was (its first upload time) and returned.
func (s *Store) Add(r io.Reader) (Firmware, error) {
	tmp, err := os.CreateTemp(s.dir, ".upload-*")
	if err != nil {
		return Firmware{}, fmt.Errorf("firmware store: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, espimage.MaxSize+1))
	if err != nil {
		return Firmware{}, fmt.Errorf("firmware upload: %w", err)
	}
	if n > espimage.MaxSize {
		return Firmware{}, fmt.Errorf("%w: larger than the %d bytes (8 MiB) an image may have", espimage.ErrInvalid, espimage.MaxSize)
	}
	info, err := espimage.Parse(tmp, n)
	if err != nil {
		return Firmware{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if fw, ok := s.items[sum]; ok {
		return fw, nil
	}
	now := s.now().UTC()
	fw := Firmware{SHA256: sum, Size: n, Chip: info.Chip, Project: info.Project, Version: info.Version,
		IDF: info.IDF, Built: info.Built(), Uploaded: gateway.FormatTime(now), uploaded: now}
	if err := tmp.Sync(); err != nil {
		return Firmware{}, fmt.Errorf("firmware store: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path(sum)); err != nil {
		return Firmware{}, fmt.Errorf("firmware store: %w", err)
	}
	b, _ := json.Marshal(fw)
	if err := atomicfile.Write(filepath.Join(s.dir, sum+".json"), b); err != nil {
		os.Remove(s.path(sum))
		return Firmware{}, fmt.Errorf("firmware store: %w", err)
	}
	s.items[sum] = fw
	return fw, nil
}

// Get returns a stored image's metadata.
func (s *Store) Get(sum string) (Firmware, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw, ok := s.items[strings.ToLower(sum)]
	return fw, ok
}

// List is every stored image, newest upload first.
func (s *Store) List() []Firmware {
	s.mu.Lock()
	out := make([]Firmware, 0, len(s.items))
	for _, fw := range s.items {
		out = append(out, fw)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Firmware) int {
		if c := b.uploaded.Compare(a.uploaded); c != 0 {
			return c
		}
		return strings.Compare(a.SHA256, b.SHA256)
	})
	return out
}

// Remove deletes an image; false when it was not stored.
func (s *Store) Remove(sum string) (bool, error) {
	sum = strings.ToLower(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[sum]; !ok {
		return false, nil
	}
	delete(s.items, sum)
	err := errors.Join(os.Remove(filepath.Join(s.dir, sum+".json")), os.Remove(s.path(sum)))
	atomicfile.SyncDir(s.dir)
	return true, err
}

// Open opens a stored image for reading.
func (s *Store) Open(sum string) (*os.File, error) {
	if !validSHA(sum) {
		return nil, os.ErrNotExist
	}
	return os.Open(s.path(sum))
}
