package serialport

import (
	"bytes"
	"strings"
	"testing"

	"go.bug.st/serial/enumerator"
)

func TestLikelyChip(t *testing.T) {
	tests := []struct {
		d    enumerator.PortDetails
		want string
	}{
		{enumerator.PortDetails{Name: "/dev/ttyUSB0", IsUSB: true, VID: "10C4", PID: "EA60"}, "CP210x"},
		{enumerator.PortDetails{Name: "/dev/ttyUSB0", IsUSB: true, VID: "1A86", PID: "7523"}, "CH340"},
		{enumerator.PortDetails{Name: "/dev/ttyACM0", IsUSB: true, VID: "1A86", PID: "55D4"}, "CH9102"},
		{enumerator.PortDetails{Name: "/dev/ttyACM0", IsUSB: true, VID: "1A86", PID: "55D3"}, "CH343"},
		{enumerator.PortDetails{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001"}, "FTDI FT232R"},
		{enumerator.PortDetails{Name: "/dev/ttyUSB1", IsUSB: true, VID: "0403", PID: "6010"}, "FT2232H"},
		{enumerator.PortDetails{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6014"}, "FT232H"},
		{enumerator.PortDetails{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6015"}, "FT231X"},
		{enumerator.PortDetails{Name: "/dev/ttyACM0", IsUSB: true, VID: "303A", PID: "1001"}, "ESP32-S3/C3"},
		{enumerator.PortDetails{Name: "/dev/ttyACM0", IsUSB: true, VID: "303a", PID: "0002"}, "ESP32-S2"},
		{enumerator.PortDetails{Name: "/dev/ttyACM0", IsUSB: true, VID: "303A", PID: "4001"}, "Espressif native USB"},
		{enumerator.PortDetails{Name: "/dev/ttyACM0", IsUSB: true, VID: "239A", PID: "80F4"}, "unknown"},
		{enumerator.PortDetails{Name: "/dev/ttyAMA0"}, "on-board UART"},
	}
	for _, tc := range tests {
		if got := LikelyChip(&tc.d); !strings.Contains(got, tc.want) {
			t.Errorf("%s:%s → %q, want it to name %q", tc.d.VID, tc.d.PID, got, tc.want)
		}
	}
}

func TestWritePorts(t *testing.T) {
	ports := []*enumerator.PortDetails{
		{Name: "/dev/ttyAMA0"},
		{Name: "/dev/ttyUSB0", IsUSB: true, VID: "10C4", PID: "EA60", SerialNumber: "0001", Manufacturer: "Silicon Labs", Product: "CP2102 USB to UART Bridge Controller"},
		{Name: "/dev/ttyACM0", IsUSB: true, VID: "303A", PID: "1001", SerialNumber: "F4:12:FA:00:11:22", Product: "USB JTAG/serial debug unit"},
	}
	byID := map[string][]string{"/dev/ttyUSB0": {"/dev/serial/by-id/usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0"}}
	var out bytes.Buffer
	if err := writePorts(&out, ports, byID); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"PORT", "VID:PID", "LIKELY CHIP",
		"/dev/ttyUSB0", "10c4:ea60", "0001", "CP2102 USB to UART Bridge Controller", "CP210x",
		"/dev/ttyACM0", "303a:1001", "ESP32-S3/C3",
		`port: "/dev/serial/by-id/usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0"`,
		`match: {vid: "10c4", pid: "ea60", serial: "0001"}`,
		`match: {vid: "303a", pid: "1001", serial: "F4:12:FA:00:11:22"}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// USB ports first: they are what a user looks for.
	if strings.Index(s, "/dev/ttyACM0") > strings.Index(s, "/dev/ttyAMA0") {
		t.Errorf("USB ports should be listed before on-board UARTs:\n%s", s)
	}
}

func TestWritePortsNone(t *testing.T) {
	var out bytes.Buffer
	if err := writePorts(&out, nil, nil); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "No serial ports found") || !strings.Contains(s, "dmesg") {
		t.Errorf("no-ports message unclear:\n%s", s)
	}
	out.Reset()
	writePorts(&out, []*enumerator.PortDetails{{Name: "/dev/ttyS0"}}, nil)
	if s := out.String(); !strings.Contains(s, "No USB serial ports") {
		t.Errorf("only on-board UARTs should say no USB ports:\n%s", s)
	}
}

func TestPrintPortsOnThisMachine(t *testing.T) {
	var out bytes.Buffer
	if err := PrintPorts(&out); err != nil {
		t.Fatalf("PrintPorts: %v", err)
	}
	if out.Len() == 0 {
		t.Error("PrintPorts wrote nothing")
	}
}
