// Package espimage reads the header of an ESP32 application image (the
// .bin that ESP-IDF and Arduino builds write): the image header with its
// extended header (chip id), the segment table, and the app description
// (esp_app_desc_t: project name, version, ESP-IDF version, build date and
// time) at the start of the first segment. It never holds the image in
// memory: Parse reads the few bytes it needs from an io.ReaderAt. It starts
// no goroutines.
package espimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxSize is the largest image accepted (DESIGN.md: at most 8 MiB).
const MaxSize = 8 << 20

// Layout of the image (ESP-IDF components/bootloader_support/include/esp_app_format.h).
const (
	ImageMagic    = 0xE9       // esp_image_header_t.magic
	AppDescMagic  = 0xABCD5432 // esp_app_desc_t.magic_word
	headerLen     = 24         // esp_image_header_t
	segHeaderLen  = 8          // esp_image_segment_header_t: load_addr, data_len
	appDescLen    = 256        // sizeof(esp_app_desc_t)
	appDescUsed   = 176        // the fields read here: up to app_elf_sha256
	maxSegments   = 16         // ESP_IMAGE_MAX_SEGMENTS
	checksumAlign = 16         // the checksum byte ends a 16-byte aligned block
	digestLen     = 32         // SHA-256 appended when hash_appended is 1
)

// ErrInvalid is wrapped by every error that says the data is not a usable
// ESP32 app image; its text is the reason, for the uploader.
var ErrInvalid = errors.New("not a valid ESP32 app image")

// chips maps the extended header's chip_id (esp_chip_id_t) to the names
// ESP-IDF uses for its targets.
var chips = map[uint16]string{
	0x0000: "esp32",
	0x0002: "esp32s2",
	0x0005: "esp32c3",
	0x0009: "esp32s3",
	0x000C: "esp32c2",
	0x000D: "esp32c6",
	0x0010: "esp32h2",
	0x0012: "esp32p4",
	0x0014: "esp32c61",
	0x0017: "esp32c5",
	0x0019: "esp32h21",
	0x001C: "esp32h4",
}

// ChipName is the target name of an esp_chip_id_t ("esp32s3") and whether
// it is a chip this package knows.
func ChipName(id uint16) (string, bool) {
	n, ok := chips[id]
	return n, ok
}

// ChipID is the esp_chip_id_t of a target name, as ChipName gives it (or
// as boards report it in $chip: "ESP32-S3" is esp32s3).
func ChipID(name string) (uint16, bool) {
	n := NormalizeChip(name)
	for id, c := range chips {
		if c == n {
			return id, true
		}
	}
	return 0, false
}

// NormalizeChip lowercases a chip name and drops '-', '_' and spaces, so
// "ESP32-S3" (Arduino's ESP.getChipModel()) and "esp32s3" compare equal.
func NormalizeChip(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		if r == '-' || r == '_' || r == ' ' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Info is what an image says about itself.
type Info struct {
	Chip     string // "esp32s3"
	ChipID   uint16
	Project  string // esp_app_desc_t.project_name
	Version  string // esp_app_desc_t.version
	IDF      string // esp_app_desc_t.idf_ver
	Date     string // esp_app_desc_t.date ("Nov 23 2026")
	Time     string // esp_app_desc_t.time ("10:00:00")
	Segments int
	Entry    uint32
	// MinRev and MaxRev are the chip revisions (major*100+minor) the image
	// runs on.
	MinRev, MaxRev uint16
	HashAppended   bool
	// End is where the image's data ends: the segments, the checksum block
	// and, with HashAppended, the SHA-256 digest.
	End int64
}

// Built is the build date and time as the image holds them ("Nov 23 2026 10:00:00").
func (i Info) Built() string { return strings.TrimSpace(i.Date + " " + i.Time) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse reads an image of size bytes from r. Every error for bad data wraps
// ErrInvalid and names the reason (truncated, wrong magic, unknown chip, …);
// other errors are read errors.
func Parse(r io.ReaderAt, size int64) (Info, error) {
	var info Info
	if size > MaxSize {
		return info, invalid("%d bytes is larger than the %d bytes (8 MiB) an image may have", size, MaxSize)
	}
	if size == 0 {
		return info, invalid("the file is empty")
	}
	var h [headerLen]byte
	n, err := readAt(r, h[:], 0, size)
	if err != nil {
		return info, err
	}
	if h[0] != ImageMagic {
		return info, invalid("the first byte is 0x%02x, not the image magic 0xe9 (is this the app .bin, not an ELF, a text or a merged flash image?)", h[0])
	}
	if n < headerLen {
		return info, invalid("truncated: %d bytes, shorter than the %d-byte image header", size, headerLen)
	}
	info.Segments = int(h[1])
	info.Entry = binary.LittleEndian.Uint32(h[4:])
	info.ChipID = binary.LittleEndian.Uint16(h[12:])
	info.MinRev = binary.LittleEndian.Uint16(h[15:])
	info.MaxRev = binary.LittleEndian.Uint16(h[17:])
	info.HashAppended = h[23] == 1
	chip, ok := chips[info.ChipID]
	if !ok {
		return info, invalid("chip id %d in the extended header is not an ESP32 chip this gateway knows (an image for another chip, or an ESP8266 image)", info.ChipID)
	}
	info.Chip = chip
	if h[23] > 1 {
		return info, invalid("hash_appended is %d, not 0 or 1", h[23])
	}
	if info.Segments == 0 || info.Segments > maxSegments {
		return info, invalid("%d segments; an app image has 1 to %d", info.Segments, maxSegments)
	}
	off := int64(headerLen)
	var first struct{ off, len int64 }
	for i := 0; i < info.Segments; i++ {
		var sh [segHeaderLen]byte
		if n, err := readAt(r, sh[:], off, size); err != nil {
			return info, err
		} else if n < segHeaderLen {
			return info, invalid("truncated: segment %d's header at offset %d is past the end of the file (%d bytes)", i, off, size)
		}
		dataLen := int64(binary.LittleEndian.Uint32(sh[4:]))
		dataOff := off + segHeaderLen
		if dataLen > size-dataOff {
			return info, invalid("truncated: segment %d (%d bytes at offset %d) runs past the end of the file (%d bytes)", i, dataLen, dataOff, size)
		}
		if i == 0 {
			first.off, first.len = dataOff, dataLen
		}
		off = dataOff + dataLen
	}
	// The checksum byte ends the 16-byte block after the last segment.
	end := (off/checksumAlign + 1) * checksumAlign
	if info.HashAppended {
		end += digestLen
	}
	info.End = end
	if end > size {
		return info, invalid("truncated: the image needs %d bytes (segments, checksum%s), the file has %d", end, map[bool]string{true: " and SHA-256", false: ""}[info.HashAppended], size)
	}

	if first.len < appDescUsed {
		return info, invalid("the first segment (%d bytes) is too short to hold the app description", first.len)
	}
	var d [appDescUsed]byte
	if _, err := readAt(r, d[:], first.off, size); err != nil {
		return info, err
	}
	if m := binary.LittleEndian.Uint32(d[0:]); m != AppDescMagic {
		return info, invalid("no app description (magic 0x%08x, want 0x%08x): a bootloader or partition table, not an app", m, uint32(AppDescMagic))
	}
	// magic 4, secure_version 4, reserv1[2] 8, then the strings.
	info.Version = cString(d[16:48])
	info.Project = cString(d[48:80])
	info.Time = cString(d[80:96])
	info.Date = cString(d[96:112])
	info.IDF = cString(d[112:144])
	if info.Version == "" {
		return info, invalid("the app description has no version")
	}
	return info, nil
}

// readAt reads len(b) bytes at off, or fewer when the file ends first.
func readAt(r io.ReaderAt, b []byte, off, size int64) (int, error) {
	if off >= size {
		return 0, nil
	}
	if rest := size - off; int64(len(b)) > rest {
		b = b[:rest]
	}
	n, err := r.ReadAt(b, off)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		return n, fmt.Errorf("read image: %w", err)
	}
	return n, nil
}

// cString is a NUL-terminated field as text: invalid UTF-8 and control
// characters become '?', so a hostile image cannot put anything odd in a
// page or a log.
func cString(b []byte) string {
	if i := indexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	var s strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			r = '?'
		}
		s.WriteRune(r)
		b = b[n:]
	}
	return strings.TrimSpace(s.String())
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
