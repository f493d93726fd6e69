package espimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func parse(b []byte) (Info, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

func TestParseValid(t *testing.T) {
	for _, chip := range []string{"esp32", "esp32s2", "esp32c3", "esp32s3", "esp32c6", "esp32p4"} {
		t.Run(chip, func(t *testing.T) {
			img := Build(Spec{Chip: chip, Project: "weather", Version: "1.4.2", IDF: "v5.2", Date: "Jan  2 2026", Time: "12:34:56", Size: 100_000})
			info, err := parse(img)
			if err != nil {
				t.Fatal(err)
			}
			if info.Chip != chip || info.Project != "weather" || info.Version != "1.4.2" || info.IDF != "v5.2" || info.Built() != "Jan  2 2026 12:34:56" {
				t.Fatalf("info = %+v", info)
			}
			if info.Segments != 2 || !info.HashAppended || info.End != int64(len(img)) {
				t.Fatalf("segments %d hash %v end %d len %d", info.Segments, info.HashAppended, info.End, len(img))
			}
		})
	}
	img := Build(Spec{Chip: "esp32c3", Project: "p", Version: "2", NoHash: true})
	if info, err := parse(img); err != nil || info.HashAppended {
		t.Fatalf("no hash: %+v %v", info, err)
	}
	// Trailing padding (a merged or padded file) is accepted.
	if _, err := parse(append(img, make([]byte, 4096)...)); err != nil {
		t.Fatal(err)
	}
}

func TestParseInvalid(t *testing.T) {
	good := Build(Spec{Chip: "esp32s3", Project: "p", Version: "1.0.0", Size: 4096})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	unknown := uint16(0x00FE)
	cases := []struct {
		name string
		img  []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"text", []byte("hello, this is a text file\n"), "magic"},
		{"elf", []byte("\x7fELF\x02\x01\x01" + strings.Repeat("\x00", 60)), "magic"},
		{"short header", good[:10], "truncated"},
		{"truncated half", good[:len(good)/2], "truncated"},
		{"truncated hash", good[:len(good)-5], "truncated"},
		{"truncated in segment header", good[:28], "truncated"},
		{"unknown chip", Build(Spec{ChipID: &unknown, Project: "p", Version: "1"}), "chip id 254"},
		{"esp8266", mut(func(b []byte) []byte { b[12], b[13] = 0x10, 0x40; return b }), "chip id"},
		{"no segments", mut(func(b []byte) []byte { b[1] = 0; return b }), "segments"},
		{"too many segments", mut(func(b []byte) []byte { b[1] = 17; return b }), "segments"},
		{"segment overflow", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[28:], 0xFFFFFFF0); return b }), "runs past the end"},
		{"bad desc magic", mut(func(b []byte) []byte { b[32] = 0; return b }), "app description"},
		{"short first segment", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[28:], 16); return b }), "too short"},
		{"no version", Build(Spec{Chip: "esp32", Project: "p"}), "no version"},
		{"hash flag", mut(func(b []byte) []byte { b[23] = 7; return b }), "hash_appended"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(c.img)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, c.want)
			}
		})
	}
}

// TestParseOversized never allocates the 8 MiB: a reader that claims it.
func TestParseOversized(t *testing.T) {
	_, err := Parse(bytes.NewReader(nil), MaxSize+1)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "8 MiB") {
		t.Fatalf("err = %v", err)
	}
}

func TestCStringSanitizes(t *testing.T) {
	if got := cString([]byte("ab\x01c\xff\x00zz")); got != "ab?c?" {
		t.Fatalf("got %q", got)
	}
}

func TestChipNames(t *testing.T) {
	if id, ok := ChipID("ESP32-S3"); !ok || id != 9 {
		t.Fatal(id, ok)
	}
	if n, ok := ChipName(5); !ok || n != "esp32c3" {
		t.Fatal(n, ok)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Build(Spec{Chip: "esp32", Project: "p", Version: "1"}))
	f.Add([]byte("text"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parse(b)
		if err == nil && (info.End > int64(len(b)) || info.Version == "") {
			t.Fatalf("accepted %+v for %d bytes", info, len(b))
		}
	})
}
