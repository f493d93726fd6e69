package espimage

import (
	"crypto/sha256"
	"encoding/binary"
)

// Spec describes an image for Build.
type Spec struct {
	Chip    string  // "esp32s3"; "" is esp32
	ChipID  *uint16 // overrides Chip (for images of an unknown chip)
	Project string
	Version string
	IDF     string // "" is "v5.3.1"
	Date    string // "" is "Nov 23 2026"
	Time    string // "" is "10:00:00"
	// Size is the whole image's size at least: the second segment is
	// padded to reach it (0: as small as it gets).
	Size int
	// NoHash leaves out the appended SHA-256 (hash_appended 0).
	NoHash bool
}

// Build writes a real-format ESP32 app image: the header and extended
// header, a DROM segment starting with esp_app_desc_t, a second segment of
// filler, the checksum block and the appended SHA-256. Tests, the load tool
// and emulated boards use it; a board checks such an image as it would a
// real one (size, SHA-256, the version in its app description).
func Build(s Spec) []byte {
	chipID, _ := ChipID(s.Chip)
	if s.Chip == "" {
		chipID = 0
	}
	if s.ChipID != nil {
		chipID = *s.ChipID
	}
	or := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	desc := make([]byte, appDescLen)
	binary.LittleEndian.PutUint32(desc[0:], AppDescMagic)
	copy(desc[16:48], s.Version)
	copy(desc[48:80], s.Project)
	copy(desc[80:96], or(s.Time, "10:00:00"))
	copy(desc[96:112], or(s.Date, "Nov 23 2026"))
	copy(desc[112:144], or(s.IDF, "v5.3.1"))

	// Fixed part: header 24, two segment headers, desc, then checksum block, hash.
	fixed := headerLen + 2*segHeaderLen + appDescLen + checksumAlign
	if !s.NoHash {
		fixed += digestLen
	}
	second := 64
	if s.Size > fixed+second {
		second = s.Size - fixed
		second -= second % 4
	}
	img := make([]byte, 0, fixed+second+16)
	h := make([]byte, headerLen)
	h[0] = ImageMagic
	h[1] = 2
	h[2] = 2    // DIO
	h[3] = 0x20 // 4 MB, 40 MHz
	binary.LittleEndian.PutUint32(h[4:], 0x40080000)
	h[8] = 0xEE
	binary.LittleEndian.PutUint16(h[12:], chipID)
	binary.LittleEndian.PutUint16(h[17:], 0xFFFF)
	if !s.NoHash {
		h[23] = 1
	}
	img = append(img, h...)
	seg := func(addr uint32, data []byte) {
		var sh [segHeaderLen]byte
		binary.LittleEndian.PutUint32(sh[0:], addr)
		binary.LittleEndian.PutUint32(sh[4:], uint32(len(data)))
		img = append(img, sh[:]...)
		img = append(img, data...)
	}
	seg(0x3F400020, desc)
	fill := make([]byte, second)
	for i := range fill {
		fill[i] = byte(i * 7)
	}
	seg(0x40080000, fill)
	cs := byte(0xEF)
	for _, b := range desc {
		cs ^= b
	}
	for _, b := range fill {
		cs ^= b
	}
	for (len(img)+1)%checksumAlign != 0 {
		img = append(img, 0)
	}
	img = append(img, cs)
	if !s.NoHash {
		sum := sha256.Sum256(img)
		img = append(img, sum[:]...)
	}
	return img
}
