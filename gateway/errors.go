package gateway

import (
	"errors"
	"fmt"
)

// Code is the stable, machine-readable name of a command error, the same on
// /ws, HTTP and MQTT (the MQTT result's "code" field). Codes never change
// meaning; the sentences that go with them may be reworded.
type Code string

// The codes of the core's sentinel errors. CodeError is anything else.
const (
	CodeUnknownDevice Code = "unknown_device"
	CodeNotAllowed    Code = "not_allowed"
	CodeOffline       Code = "offline"
	CodeRateLimited   Code = "rate_limited"
	CodeTimeout       Code = "timeout"
	CodeBadCommand    Code = "bad_command"
	CodeShutdown      Code = "shutdown"
	CodeError         Code = "error"
)

// codes pairs each sentinel with its code, most specific first: an error
// that wraps several (a remote gateway's timeout while busy) takes the first.
var codes = []struct {
	err  error
	code Code
}{
	{ErrUnknownDevice, CodeUnknownDevice},
	{ErrNotAllowed, CodeNotAllowed},
	{ErrOffline, CodeOffline},
	{ErrRateLimited, CodeRateLimited},
	{ErrTimeout, CodeTimeout},
	{ErrBadCommand, CodeBadCommand},
	{ErrShutdown, CodeShutdown},
}

// CodeOf is err's code: the code of the first sentinel it wraps, CodeError
// for any other error, "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeError
}

// Sentinel is the sentinel error of a code (nil for CodeError and for codes
// it does not know), so an edge that receives a code from another gateway
// can wrap the same sentinel and answer as for a local device.
func Sentinel(c Code) error {
	for _, e := range codes {
		if e.code == c {
			return e.err
		}
	}
	return nil
}

// UserError is an error whose text is already what a user should read
// (an edge's own refusal, such as the MQTT bridge's "gateway busy"); it
// wraps the sentinel that gives its code.
type UserError struct {
	Text string
	Err  error // a sentinel: ErrRateLimited, ErrTimeout, …
}

func (e *UserError) Error() string { return e.Text }
func (e *UserError) Unwrap() error { return e.Err }

// Describe is the sentence a user reads for a command error on device: the
// one text every edge (/ws, HTTP, MQTT) shows, with the numbers the contract
// promises. A UserError keeps its own text (with whatever wraps it).
func Describe(device string, err error) string {
	if ue := (*UserError)(nil); errors.As(err, &ue) {
		return err.Error()
	}
	switch CodeOf(err) {
	case "":
		return ""
	case CodeUnknownDevice:
		return "unknown device " + device
	case CodeOffline:
		return "device " + device + " is offline"
	case CodeRateLimited:
		return fmt.Sprintf("rate-limited: device %s takes at most %d commands per second", device, int(CommandRate))
	case CodeTimeout:
		return fmt.Sprintf("device %s did not take the command within %d s", device, int(CommandAnswerWithin.Seconds()))
	default:
		return err.Error()
	}
}
