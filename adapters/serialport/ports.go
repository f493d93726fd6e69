package serialport

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// byIDDir holds udev's stable names for USB serial ports.
const byIDDir = "/dev/serial/by-id"

// PrintPorts writes the serial ports with their USB identity and likely chip
// (esp32gw ports), and a hint for the config; with no ports it says so and
// what to check.
func PrintPorts(w io.Writer) error {
	ports, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return fmt.Errorf("ports: list serial ports: %w", err)
	}
	// The enumerator leaves Name empty for a port without sysfs details;
	// take the names from the plain list so no port goes missing.
	names, _ := serial.GetPortsList()
	seen := map[string]bool{}
	var all []*enumerator.PortDetails
	for _, d := range ports {
		if d.Name != "" && !seen[d.Name] {
			seen[d.Name] = true
			all = append(all, d)
		}
	}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			all = append(all, &enumerator.PortDetails{Name: n})
		}
	}
	return writePorts(w, all, byIDLinks(byIDDir))
}

const noPortsHint = `Plug the board in with a data USB cable
(some cables only charge), then run "esp32gw ports" again; "dmesg | tail"
shows whether Linux saw it. Boards appear as /dev/ttyUSB* (CP210x, CH340,
FTDI) or /dev/ttyACM* (ESP32-S2/S3/C3 native USB, CH9102, CH343).
`

// byIDLinks maps device nodes to their /dev/serial/by-id names.
func byIDLinks(dir string) map[string][]string {
	out := map[string][]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		link := filepath.Join(dir, e.Name())
		if real, err := filepath.EvalSymlinks(link); err == nil {
			out[real] = append(out[real], link)
		}
	}
	return out
}

// writePorts prints ports as a table, USB ports first, each followed by the
// config lines that select it.
func writePorts(w io.Writer, ports []*enumerator.PortDetails, byID map[string][]string) error {
	if len(ports) == 0 {
		_, err := fmt.Fprint(w, "No serial ports found.\n"+noPortsHint)
		return err
	}
	sort.SliceStable(ports, func(i, j int) bool {
		if ports[i].IsUSB != ports[j].IsUSB {
			return ports[i].IsUSB
		}
		return ports[i].Name < ports[j].Name
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tVID:PID\tSERIAL\tPRODUCT\tLIKELY CHIP")
	for _, d := range ports {
		id, serialNo, product := "-", dash(d.SerialNumber), dash(strings.TrimSpace(d.Manufacturer+" "+d.Product))
		if d.IsUSB {
			id = strings.ToLower(d.VID + ":" + d.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, id, serialNo, product, LikelyChip(d))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if !ports[0].IsUSB { // USB ports sort first
		_, err := fmt.Fprint(w, "No USB serial ports: the ports above are on-board UARTs.\n"+noPortsHint)
		return err
	}
	fmt.Fprintln(w, "In config.yaml, select a board by a name that survives replugging:")
	for _, d := range ports {
		if !d.IsUSB {
			continue
		}
		fmt.Fprintf(w, "  %s:\n", d.Name)
		for _, link := range byID[d.Name] {
			fmt.Fprintf(w, "    port: %q\n", link)
		}
		m := fmt.Sprintf("    match: {vid: %q, pid: %q", strings.ToLower(d.VID), strings.ToLower(d.PID))
		if d.SerialNumber != "" {
			m += fmt.Sprintf(", serial: %q", d.SerialNumber)
		}
		fmt.Fprintln(w, m+"}")
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// usbChips are the USB-to-UART bridges and native USB modes found on ESP32
// boards, by VID:PID (lower case).
var usbChips = map[string]string{
	"10c4:ea60": "CP210x (Silicon Labs CP2102/CP2104)",
	"1a86:7523": "CH340 (WCH)",
	"1a86:7522": "CH340 (WCH)",
	"1a86:55d4": "CH9102 (WCH)",
	"1a86:55d3": "CH343 (WCH)",
	"0403:6001": "FTDI FT232R",
	"0403:6010": "FTDI FT2232H (ESP-Prog, WROVER-KIT: the UART is the second port)",
	"0403:6014": "FTDI FT232H",
	"0403:6015": "FTDI FT231X",
	"303a:1001": "ESP32-S3/C3/C6/H2 native USB (USB-Serial-JTAG or CDC)",
	"303a:0002": "ESP32-S2/S3 native USB (TinyUSB CDC)",
}

// LikelyChip names the USB serial chip (or ESP32 native USB) behind a port.
func LikelyChip(d *enumerator.PortDetails) string {
	if !d.IsUSB {
		base := filepath.Base(d.Name)
		if strings.HasPrefix(base, "ttyAMA") || strings.HasPrefix(base, "ttyS") {
			return "on-board UART, not USB"
		}
		return "-"
	}
	vid, pid := strings.ToLower(d.VID), strings.ToLower(d.PID)
	if c, ok := usbChips[vid+":"+pid]; ok {
		return c
	}
	switch vid {
	case "303a":
		return "Espressif native USB (ESP32-S2/S3/C3)"
	case "1a86":
		return "WCH CH34x family"
	case "10c4":
		return "Silicon Labs CP21xx family"
	case "0403":
		return "FTDI"
	}
	return "unknown USB serial device"
}
