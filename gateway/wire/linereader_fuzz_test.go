package wire_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/esp32gw/esp32gw/gateway/wire"
)

// item is one result of LineReader.Next: a line or ErrLineTooLong.
type item struct {
	line    string
	tooLong bool
}

// model is the LineReader's contract written the obvious way: split on '\n',
// strip one '\r' before it, drop lines longer than max, and hand out a final
// unterminated line at EOF.
func model(stream []byte, max int) []item {
	var out []item
	parts := bytes.Split(stream, []byte{'\n'})
	if len(parts[len(parts)-1]) == 0 {
		parts = parts[:len(parts)-1] // the stream ended with a newline
	}
	for _, p := range parts {
		p = bytes.TrimSuffix(p, []byte{'\r'})
		if len(p) > max {
			out = append(out, item{tooLong: true})
		} else {
			out = append(out, item{line: string(p)})
		}
	}
	return out
}

// chunkReader returns stream in reads whose sizes follow pattern, including
// empty (0, nil) reads (never two in a row, so it always progresses), and
// returns the last bytes together with io.EOF.
type chunkReader struct {
	stream  []byte
	pattern []byte
	i       int
	empty   bool // the last read was empty
}

func (c *chunkReader) Read(p []byte) (int, error) {
	size := 1
	if len(c.pattern) > 0 {
		size = int(c.pattern[c.i%len(c.pattern)])
		c.i++
	}
	if size == 0 && c.empty {
		size = 1
	}
	c.empty = size == 0
	size = min(size, len(p), len(c.stream))
	n := copy(p, c.stream[:size])
	c.stream = c.stream[n:]
	if len(c.stream) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// collect reads every item until an error other than ErrLineTooLong, bounded
// so a reader bug cannot hang the test.
func collect(t testing.TB, lr *wire.LineReader, limit int) ([]item, error) {
	var out []item
	for range limit {
		line, err := lr.Next()
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			out = append(out, item{tooLong: true})
		case err != nil:
			return out, err
		default:
			out = append(out, item{line: string(line)})
		}
	}
	t.Fatalf("no error after %d items", limit)
	return nil, nil
}

func equalItems(a, b []item) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Real ESP32 serial output: ROM banner, ANSI IDF logs, Arduino core logs,
// JSON readings with \r\n, and noise.
var firmwareSeeds = []string{
	"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\nconfigsip: 0, SPIWP:0xee\r\n",
	"mode:DIO, clock div:1\r\nload:0x3fff0030,len:1184\r\nentry 0x400805e4\r\n",
	"ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n",
	"\x1b[0;32mI (27) boot: ESP-IDF v5.1 2nd stage bootloader\x1b[0m\r\n",
	"[   1234][E][WiFiGeneric.cpp:1583] _eventCallback(): Reason: 2 - AUTH_EXPIRE\r\n",
	"{\"label\":\"temp\",\"value\":21.5}\r\n{\"temp\":21.5,\"hum\":40}\r\n",
	"\x00\x00\xff\xfe\x80garbage\n{\"label\":\"led\",\"value\":\"on\"}\n",
	"Guru Meditation Error: Core  1 panic'ed (LoadProhibited)\r\nBacktrace: 0x400d1234:0x3ffb1f50\r\nRebooting...\r\n",
	"{\"label\":\"temp\",\"val", // cut off by a reset, no newline
	"\r\n\n\r\r\n",
}

func FuzzLineReader(f *testing.F) {
	for i, s := range firmwareSeeds {
		f.Add([]byte(s), []byte{byte(1 + i*7%64), 0, 3}, uint16(64))
		f.Add([]byte(s), []byte{255}, uint16(8))
	}
	f.Add([]byte(strings.Repeat("x", 5000)+"\n{\"a\":1}\n"), []byte{200, 0, 17}, uint16(4096))
	f.Fuzz(func(t *testing.T, stream, pattern []byte, max uint16) {
		limit := int(max % 5000)
		lr := wire.NewLineReader(&chunkReader{stream: stream, pattern: pattern}, limit)
		got, err := collect(t, lr, len(stream)+2)
		if err != io.EOF {
			t.Fatalf("err = %v, want io.EOF", err)
		}
		if want := model(stream, limit); !equalItems(got, want) {
			t.Fatalf("max %d, pattern %v:\ngot  %+v\nwant %+v", limit, pattern, got, want)
		}
		if _, err := lr.Next(); err != io.EOF {
			t.Fatalf("after EOF: err = %v, want io.EOF again", err)
		}
	})
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("A", 100<<10) // 100 KiB, as a board stuck printing without newline
	tests := []struct {
		name   string
		stream string
		max    int
		want   []item
	}{
		{"lines and CRLF", "a\r\nb\n\nc\r\n", 10, []item{{line: "a"}, {line: "b"}, {line: ""}, {line: "c"}}},
		{"100 KiB line then resync", long + "\n{\"a\":1}\n", 4096, []item{{tooLong: true}, {line: `{"a":1}`}}},
		{"100 KiB line then CRLF", long + "\r\nok\r\n", 4096, []item{{tooLong: true}, {line: "ok"}}},
		{"exactly max with CR", "abcd\r\nabcde\r\n", 4, []item{{line: "abcd"}, {tooLong: true}}},
		{"exactly max", "abcd\nabcde\n", 4, []item{{line: "abcd"}, {tooLong: true}}},
		{"binary junk", "\x00\xff\x80\x1b[0m\n{}\n", 64, []item{{line: "\x00\xff\x80\x1b[0m"}, {line: "{}"}}},
		{"final line without newline", "a\nb", 4, []item{{line: "a"}, {line: "b"}}},
		{"final long line without newline", "a\nbbbbbb", 4, []item{{line: "a"}, {tooLong: true}}},
		{"lone CR is content", "a\rb\n", 4, []item{{line: "a\rb"}}},
		{"zero max", "\nx\n", 0, []item{{line: ""}, {tooLong: true}}},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader, // one line split across many reads
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
	}
	for _, tc := range tests {
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				lr := wire.NewLineReader(wrap(strings.NewReader(tc.stream)), tc.max)
				got, err := collect(t, lr, len(tc.stream)+2)
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF", err)
				}
				if !equalItems(got, tc.want) {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
			})
		}
	}
}

// errAfterReader returns its data together with a non-EOF error, as a port
// that fails mid-read might.
type errAfterReader struct {
	data []byte
	err  error
	done bool
}

func (r *errAfterReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, r.err
	}
	r.done = true
	return copy(p, r.data), r.err
}

func TestLineReaderKeepsDataReturnedWithError(t *testing.T) {
	boom := errors.New("port closed")
	lr := wire.NewLineReader(&errAfterReader{data: []byte("one\ntwo\npart"), err: boom}, 64)
	got, err := collect(t, lr, 10)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	// The partial line "part" is dropped: the board was cut off mid-line.
	if want := []item{{line: "one"}, {line: "two"}}; !equalItems(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := lr.Next(); !errors.Is(err, boom) {
		t.Fatalf("second call: err = %v, want %v", err, boom)
	}
}

// zeroReader returns (0, nil) many times before its data, as a serial port
// with a read timeout does while the board is quiet.
type zeroReader struct {
	zeros int
	r     io.Reader
}

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.zeros > 0 {
		z.zeros--
		return 0, nil
	}
	return z.r.Read(p)
}

func TestLineReaderSurvivesEmptyReads(t *testing.T) {
	lr := wire.NewLineReader(&zeroReader{zeros: 500, r: strings.NewReader("{\"a\":1}\n")}, 64)
	line, err := lr.Next()
	if err != nil || string(line) != `{"a":1}` {
		t.Fatalf("Next = %q, %v", line, err)
	}
}

func TestLineReaderMemoryBounded(t *testing.T) {
	// 8 MiB without a newline must not grow the reader beyond its limit.
	stream := io.MultiReader(io.LimitReader(infiniteA{}, 8<<20), strings.NewReader("\nok\n"))
	lr := wire.NewLineReader(stream, 4096)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := lr.Next(); !errors.Is(err, wire.ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Errorf("discarding 8 MiB allocated %d bytes; want the buffer reused", grew)
	}
	if line, err := lr.Next(); err != nil || string(line) != "ok" {
		t.Fatalf("Next = %q, %v", line, err)
	}
}

type infiniteA struct{}

func (infiniteA) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	return len(p), nil
}
