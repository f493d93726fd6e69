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
	"time"
	"unicode/utf8"

	"github.com/esp32gw/esp32gw/gateway"
)

// ErrNotJSON means the frame is not a JSON object or array: on serial it is a
// log line, on WebSocket a malformed frame.
var ErrNotJSON = errors.New("not a JSON object or array")

// ErrMalformed means the frame looked like JSON but could not be used.
var ErrMalformed = errors.New("malformed frame")

// MaxItems bounds how many readings one frame may carry.
const MaxItems = gateway.MaxReadingsPerFrame

// Parse decodes one frame into readings, in the order they appear. It never
// panics and never returns readings with invalid JSON values. A frame that
// is partly usable (an array with one bad element) returns the good readings
// and an error describing the rest.
func Parse(frame []byte) ([]gateway.Reading, error) {
	frame = bytes.TrimSpace(frame)
	if len(frame) == 0 || (frame[0] != '{' && frame[0] != '[') {
		return nil, ErrNotJSON
	}
	if !utf8.Valid(frame) || !json.Valid(frame) {
		if textAfterValue(frame) {
			// A line such as the Arduino core's "[   214][I][WiFiGeneric.cpp:1035] …"
			// starts with a JSON value but is console text.
			return nil, ErrNotJSON
		}
		if !utf8.Valid(frame) {
			return nil, fmt.Errorf("%w: invalid UTF-8", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: invalid JSON", ErrMalformed)
	}
	if frame[0] == '{' {
		// A bad "ts" still gives the readings (stamped on arrival) with the error.
		return parseObject(frame, nil)
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

// textAfterValue reports whether frame (trimmed) is one complete JSON value
// followed by more text.
func textAfterValue(frame []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(frame))
	var v json.RawMessage
	return dec.Decode(&v) == nil && dec.InputOffset() < int64(len(frame))
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
	// Seed form: a string "label" and a "value". In either form, "ts" is
	// the board's time for the object's readings, never a label.
	var label, value, tsRaw json.RawMessage
	for _, f := range fields {
		switch f.key {
		case "label":
			label = f.raw
		case "value":
			value = f.raw
		case "ts":
			tsRaw = f.raw
		}
	}
	ts, tsErr := parseTS(tsRaw)
	if label != nil && value != nil {
		var l string
		if label[0] != '"' || json.Unmarshal(label, &l) != nil { // null would decode as ""
			return out, fmt.Errorf("%w: \"label\" must be a string", ErrMalformed)
		}
		return append(out, reading(l, compact(value), ts)), tsErr
	}
	for _, f := range fields {
		if f.key == "ts" {
			continue
		}
		out = append(out, reading(f.key, compact(f.raw), ts))
	}
	return out, tsErr
}

// reading makes one reading; a label starting with '$' is a board attribute
// ($fw, $rssi, …), kept without the '$'.
func reading(label string, value json.RawMessage, ts time.Time) gateway.Reading {
	if name, ok := strings.CutPrefix(label, gateway.AttrPrefix); ok {
		return gateway.Reading{Label: name, Value: value, TS: ts, Attr: true}
	}
	return gateway.Reading{Label: label, Value: value, TS: ts}
}

// parseTS reads a board's "ts": unix milliseconds (a JSON number) or an
// RFC 3339 string. Absent gives the zero time (stamped on arrival); a value
// that is not a time gives the zero time and an ErrMalformed, so the
// readings still count and the frame is counted as malformed. Whether the
// time is plausible (not ahead of the gateway's clock) is the core's call.
func parseTS(raw json.RawMessage) (time.Time, error) {
	if raw == nil {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("%w: \"ts\" %s is not an RFC 3339 time", ErrMalformed, gateway.Truncate(string(raw), 40))
	}
	var ms float64
	// Years 1970 to 9999 in milliseconds; anything else is not a time.
	if c := raw[0]; !(c >= '0' && c <= '9') || json.Unmarshal(raw, &ms) != nil || ms > 253402300799999 {
		return time.Time{}, fmt.Errorf("%w: \"ts\" %s is not unix milliseconds or an RFC 3339 time", ErrMalformed, gateway.Truncate(string(raw), 40))
	}
	return time.UnixMilli(int64(ms)).UTC(), nil
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
// sends {"label":L,"value":V} ({"value":V} when there is no label). A
// gateway frame (Command.Frame) goes as it is.
func EncodeCommand(format string, c gateway.Command) []byte {
	if c.Frame {
		return append([]byte(nil), c.Value...)
	}
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

// errBadRead reports an io.Reader that returned an impossible byte count.
var errBadRead = errors.New("line reader: read returned an invalid count")

// LineReader splits a byte stream into lines of bounded length. A longer line
// is discarded up to its newline and reported with ErrLineTooLong, so the
// reader resynchronises at the next line instead of giving up as
// bufio.Scanner does. A trailing '\r' is stripped and does not count against
// the limit. Memory stays bounded by the limit plus one read buffer whatever
// the stream holds. A LineReader is not safe for concurrent use.
type LineReader struct {
	r          io.Reader
	max        int
	buf        []byte // read buffer; buf[start:end] is not consumed yet
	start, end int
	line       []byte // the line being assembled, at most max+1 bytes
	skip       bool   // discarding an over-long line until its newline
	err        error  // the reader's error, returned once buffered bytes are used up
}

// NewLineReader reads lines of at most max bytes (excluding the newline and a
// '\r' before it) from r.
func NewLineReader(r io.Reader, max int) *LineReader {
	if max < 0 {
		max = 0
	}
	return &LineReader{r: r, max: max, buf: make([]byte, 4096)}
}

// Next returns the next complete line (valid until the next call), or
// ErrLineTooLong once per discarded line, or the reader's error. Bytes that
// the reader returned together with an error are used before the error is
// reported. At io.EOF a final unterminated line is returned as a line (or
// ErrLineTooLong); after any other error a partial line is dropped, since a
// board cut off mid-line sent nothing usable. The error is then returned by
// every later call. Reads that return (0, nil) are retried, so a port with a
// read timeout never ends the loop.
func (lr *LineReader) Next() ([]byte, error) {
	for {
		if lr.start < lr.end {
			data := lr.buf[lr.start:lr.end]
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				lr.start += i + 1
				return lr.finish(data[:i])
			}
			// No newline yet: keep the bytes, or start discarding. One
			// byte over max is kept: it may be a '\r' before the newline.
			if !lr.skip {
				if len(lr.line)+len(data) > lr.max+1 {
					lr.skip = true
					lr.line = lr.line[:0]
				} else {
					lr.line = append(lr.line, data...)
				}
			}
			lr.start, lr.end = 0, 0
		}
		if lr.err != nil {
			if lr.err == io.EOF && (lr.skip || len(lr.line) > 0) {
				return lr.finish(nil)
			}
			lr.skip = false
			lr.line = lr.line[:0]
			return nil, lr.err
		}
		n, err := lr.r.Read(lr.buf)
		if n < 0 || n > len(lr.buf) {
			n, err = 0, errBadRead
		}
		lr.start, lr.end = 0, n
		if err != nil {
			lr.err = err
		}
	}
}

// finish ends the line being assembled with chunk (the bytes before its
// newline) and returns it, or ErrLineTooLong.
func (lr *LineReader) finish(chunk []byte) ([]byte, error) {
	if lr.skip {
		lr.skip = false
		lr.line = lr.line[:0]
		return nil, ErrLineTooLong
	}
	n := len(lr.line) + len(chunk)
	switch {
	case len(chunk) > 0 && chunk[len(chunk)-1] == '\r':
		n--
	case len(chunk) == 0 && len(lr.line) > 0 && lr.line[len(lr.line)-1] == '\r':
		n--
	}
	if n > lr.max {
		lr.line = lr.line[:0]
		return nil, ErrLineTooLong
	}
	lr.line = append(lr.line, chunk...)
	line := lr.line[:n]
	lr.line = lr.line[:0]
	return line, nil
}
