package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/esp32gw/esp32gw/gateway"
	"github.com/esp32gw/esp32gw/internal/atomicfile"
)

// devicesDoc is state_dir/devices.yaml as a YAML tree, so adding or
// removing one device rewrites nothing else: the other entries keep their
// order, formatting and comments. The gateway writes the file atomically
// (internal/atomicfile, mode 0600: it holds device tokens); config.yaml is
// never written.
//
// Shape (the same as config.yaml's devices:, nothing else):
//
//	devices:
//	  - id: garage
//	    name: Garage
//	    transport: ws-listen
//	    token: 5f0c…          # made by adoption; the board was sent it
//	    enrolled_as: newboard # the id it enrolled under
//	    commands: [toggle]
type devicesDoc struct {
	path string
	root yaml.Node // a document node holding a mapping
	list *yaml.Node
}

// readDevicesDoc reads path; a missing file is an empty list. A file that
// is not YAML, or whose top level is not a mapping with a devices: list, is
// an error and is never overwritten.
func readDevicesDoc(path string) (*devicesDoc, error) {
	d := &devicesDoc{path: path}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := yaml.Unmarshal(b, &d.root); err != nil {
			return nil, fmt.Errorf("%s is not valid YAML (it is left as it is; fix or remove it): %w", path, err)
		}
	}
	if d.root.Kind == 0 {
		d.root = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if d.root.Kind != yaml.DocumentNode || len(d.root.Content) != 1 || d.root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: the top level must be a mapping with a devices: list (it is left as it is)", path)
	}
	top := d.root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "devices" {
			v := top.Content[i+1]
			switch {
			case v.Kind == yaml.SequenceNode:
			case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
				*v = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			default:
				return nil, fmt.Errorf("%s: devices: must be a list (it is left as it is)", path)
			}
			d.list = v
		}
	}
	if d.list == nil {
		d.list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "devices"}, d.list)
	}
	return d, nil
}

// ids is the id of every entry, in order ("" for an entry without one).
func (d *devicesDoc) ids() []string {
	var out []string
	for _, item := range d.list.Content {
		out = append(out, entryID(item))
	}
	return out
}

func entryID(item *yaml.Node) string {
	if item.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		if item.Content[i].Value == "id" {
			return item.Content[i+1].Value
		}
	}
	return ""
}

func (d *devicesDoc) has(id string) bool {
	for _, x := range d.ids() {
		if x == id {
			return true
		}
	}
	return false
}

// fileDevice is a device as adoption writes it: only the keys it sets.
type fileDevice struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name,omitempty"`
	Transport  string   `yaml:"transport"`
	URL        string   `yaml:"url,omitempty"`
	Token      string   `yaml:"token,omitempty"`
	EnrolledAs string   `yaml:"enrolled_as,omitempty"`
	Commands   []string `yaml:"commands,flow"`
}

// add appends dev.
func (d *devicesDoc) add(dev gateway.DeviceConfig) error {
	var n yaml.Node
	cmds := dev.Commands
	if cmds == nil {
		cmds = []string{}
	}
	if err := n.Encode(fileDevice{ID: dev.ID, Name: dev.Name, Transport: dev.Transport, URL: dev.URL,
		Token: dev.Token, EnrolledAs: dev.EnrolledAs, Commands: cmds}); err != nil {
		return err
	}
	d.list.Content = append(d.list.Content, &n)
	d.list.Style = 0 // block style, whatever the file had for an empty list
	return nil
}

// remove drops the entry with id; false when there is none.
func (d *devicesDoc) remove(id string) bool {
	for i, item := range d.list.Content {
		if entryID(item) == id {
			d.list.Content = append(d.list.Content[:i:i], d.list.Content[i+1:]...)
			return true
		}
	}
	return false
}

// devicesHeader opens a devices.yaml the gateway writes (kept once: a file
// read back holds it as a comment already).
const devicesHeader = "# Devices added from the dashboard or the API. esp32gw rewrites this file;\n# edit it while the gateway is stopped, or send SIGHUP after editing.\n"

// write replaces the file atomically.
func (d *devicesDoc) write() error {
	var body bytes.Buffer
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(&d.root); err != nil {
		return fmt.Errorf("encode %s: %w", d.path, err)
	}
	if err := enc.Close(); err != nil {
		return err
	}
	out := body.Bytes()
	if !bytes.Contains(out, []byte(devicesHeader[:40])) {
		out = append([]byte(devicesHeader+"\n"), out...)
	}
	if err := atomicfile.Write(d.path, out); err != nil {
		return fmt.Errorf("write %s: %w", d.path, err)
	}
	return nil
}
