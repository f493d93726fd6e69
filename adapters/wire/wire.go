// Package wire is the board wire format, decoded in one place for every
// transport: one JSON object per WebSocket text frame or serial line, in the
// seed form {"label":L,"value":V}, a flat object {"temp":21.5,"hum":40}, or an
// array of either; anything that is not JSON is a console log line. It also
// encodes commands for boards by their command_format. It starts no goroutines.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/esp32gw/esp32gw/gateway"
)

// ErrNotJSON means the frame is not a JSON object or array: on serial it is a
// log line, on WebSocket a malformed frame.
var ErrNotJSON = errors.New("not a JSON object or array")

// ErrMalformed means the frame looked like JSON but could not be used.
var ErrMalformed = errors.New("malformed frame")

// MaxItems bounds how many readings one frame may carry.
const MaxItems = 1024

// Parse decodes one frame into readings, in the order they appear. It never
// panics and never returns readings with invalid JSON values. A frame that
// is partly usable (an array with one bad element) returns the good readings
// and an error describing the rest.
func Parse(frame []byte) ([]gateway.Reading, error) {
	frame = bytes.TrimSpace(frame)
	if len(frame) == 0 || (frame[0] != '{' && frame[0] != '[') {
		return nil, ErrNotJSON
	}
	if !utf8.Valid(frame) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrMalformed)
	}
	if !json.Valid(frame) {
		return nil, fmt.Errorf("%w: invalid JSON", ErrMalformed)
	}
	if frame[0] == '{' {
		rs, err := parseObject(frame, nil)
		if err != nil {
			return nil, err
		}
		return rs, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(frame, &items); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var out []gateway.Reading
	var bad int
	for _, it := range items {
		if len(out) >= MaxItems {
			return out, fmt.Errorf("%w: more than %d readings in one frame", ErrMalformed, MaxItems)
		}
		if len(it) == 0 || it[0] != '{' {
			bad++
			continue
		}
		var err error
		if out, err = parseObject(it, out); err != nil {
			bad++
		}
	}
	if bad > 0 {
		return out, fmt.Errorf("%w: %d array element(s) are not reading objects", ErrMalformed, bad)
	}
	return out, nil
}

// parseObject appends the readings of one valid JSON object to out.
func parseObject(obj []byte, out []gateway.Reading) ([]gateway.Reading, error) {
	var fields []field
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{'
		return out, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		fields = append(fields, field{key, raw})
		if len(fields) > MaxItems {
			return out, fmt.Errorf("%w: more than %d keys in one object", ErrMalformed, MaxItems)
		}
	}
	// Seed form: a string "label" and a "value".
	var label, value json.RawMessage
	for _, f := range fields {
		switch f.key {
		case "label":
			label = f.raw
		case "value":
			value = f.raw
		}
	}
	if label != nil && value != nil {
		var l string
		if err := json.Unmarshal(label, &l); err != nil {
			return out, fmt.Errorf("%w: \"label\" must be a string", ErrMalformed)
		}
		return append(out, gateway.Reading{Label: l, Value: compact(value)}), nil
	}
	for _, f := range fields {
		out = append(out, gateway.Reading{Label: f.key, Value: compact(f.raw)})
	}
	return out, nil
}

type field struct {
	key string
	raw json.RawMessage
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw // already validated; cannot happen
	}
	return b.Bytes()
}

// LogLine turns a non-JSON serial line into printable console text: ANSI
// colour codes removed, invalid UTF-8 and control bytes replaced.
func LogLine(line []byte) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		c := line[i]
		if c == 0x1b { // ESC [ ... final byte
			j := i + 1
			if j < len(line) && line[j] == '[' {
				j++
				for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
					j++
				}
				j++
			}
			i = j
			continue
		}
		r, size := utf8.DecodeRune(line[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune(utf8.RuneError)
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			// drop other control bytes (NUL noise, bell, CR)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return strings.TrimRight(b.String(), " ")
}

// ParseCommand reads a command as a board (or the compatibility endpoint)
// receives it: a JSON object with "value" (and optional "label") is that
// command; any other text T is the command value T with no label.
func ParseCommand(frame []byte) gateway.Command {
	t := bytes.TrimSpace(frame)
	if len(t) > 0 && t[0] == '{' && json.Valid(t) {
		var c struct {
			Label *string         `json:"label"`
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(t, &c) == nil && len(c.Value) > 0 {
			cmd := gateway.Command{Value: compact(c.Value)}
			if c.Label != nil {
				cmd.Label = *c.Label
			}
			return cmd
		}
	}
	v, _ := json.Marshal(strings.ToValidUTF8(string(frame), "\uFFFD"))
	return gateway.Command{Value: v}
}

// EncodeCommand renders a command for a board by its command_format: "text"
// sends the value itself (a JSON string's text, otherwise its JSON), "json"
// sends {"label":L,"value":V} ({"value":V} when there is no label).
func EncodeCommand(format string, c gateway.Command) []byte {
	if format == gateway.FormatJSON {
		var b bytes.Buffer
		b.WriteByte('{')
		if c.Label != "" {
			l, _ := json.Marshal(c.Label)
			b.WriteString(`"label":`)
			b.Write(l)
			b.WriteByte(',')
		}
		b.WriteString(`"value":`)
		b.Write(c.Value)
		b.WriteByte('}')
		return b.Bytes()
	}
	return []byte(gateway.CommandKey(c.Value))
}

// ErrLineTooLong reports a line longer than the LineReader's limit; the line
// was discarded up to its newline.
var ErrLineTooLong = errors.New("line too long")

// LineReader splits a byte stream into lines of bounded length. A longer line
// is discarded up to its newline and reported with ErrLineTooLong, so the
// reader resynchronises at the next line instead of giving up as
// bufio.Scanner does. A trailing '\r' is stripped.
type LineReader struct {
	r    io.Reader
	max  int
	buf  []byte // pending bytes not yet returned
	line []byte
	skip bool // discarding an over-long line until its newline
}

// NewLineReader reads lines of at most max bytes (excluding the newline) from r.
func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{r: r, max: max, buf: make([]byte, 0, 4096)}
}

// Next returns the next complete line (valid until the next call), or
// ErrLineTooLong once per discarded line, or the reader's error. Reads that
// return (0, nil) are retried, so a port with a read timeout never ends the loop.
func (lr *LineReader) Next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(lr.buf, '\n'); i >= 0 {
			chunk := lr.buf[:i]
			rest := lr.buf[i+1:]
			if lr.skip || len(lr.line)+len(chunk) > lr.max {
				lr.skip = false
				lr.line = lr.line[:0]
				lr.buf = append(lr.buf[:0], rest...)
				return nil, ErrLineTooLong
			}
			lr.line = append(lr.line, chunk...)
			lr.buf = append(lr.buf[:0], rest...)
			line := bytes.TrimSuffix(lr.line, []byte{'\r'})
			lr.line = lr.line[:0]
			return line, nil
		}
		// No newline in buf: move it into the line, or start discarding.
		if !lr.skip {
			if len(lr.line)+len(lr.buf) > lr.max {
				lr.skip = true
				lr.line = lr.line[:0]
			} else {
				lr.line = append(lr.line, lr.buf...)
			}
		}
		lr.buf = lr.buf[:0]
		n, err := lr.r.Read(lr.buf[:cap(lr.buf)])
		lr.buf = lr.buf[:n]
		if err != nil && n == 0 {
			return nil, err
		}
	}
}
