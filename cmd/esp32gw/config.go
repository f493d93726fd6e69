package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/esp32gw/esp32gw/gateway"
)

// loadConfig reads, strictly decodes and validates a config file. Every
// problem is reported at once, each naming the field, its line where known,
// and what is allowed.
func loadConfig(path string) (gateway.Config, error) {
	cfg := gateway.DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return cfg, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("%s: %s", path, explainYAMLError(err))
		}
	}
	cfg.ApplyDeviceDefaults()
	if err := cfg.Validate(); err != nil {
		lines := fieldLines(&root)
		var msgs []string
		for _, e := range unjoin(err) {
			var fe *gateway.FieldError
			if errors.As(e, &fe) {
				if l := lookupLine(lines, fe.Field); l > 0 {
					msgs = append(msgs, fmt.Sprintf("%s:%d: %s", path, l, fe.Error()))
					continue
				}
			}
			msgs = append(msgs, fmt.Sprintf("%s: %s", path, e))
		}
		return cfg, errors.New(strings.Join(msgs, "\n"))
	}
	return cfg, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// fieldLines maps "http.listen", "devices[1].url" to their line in the file.
func fieldLines(root *yaml.Node) map[string]int {
	out := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				out[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				out[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return out
}

// lookupLine finds the line of field, or of its nearest parent in the file.
func lookupLine(lines map[string]int, field string) int {
	for f := field; f != ""; {
		if l, ok := lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type (\S+)`)

// explainYAMLError rewrites yaml.v3's type errors in the config's own words:
// "unknown key "lisen" in http (allowed: listen, auth, …)".
func explainYAMLError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	sections := configSections()
	var msgs []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			sec := sections[m[2]]
			e = strings.Replace(e, m[0], fmt.Sprintf("unknown key %q in %s (allowed: %s)", m[1], sec.name, strings.Join(sec.keys, ", ")), 1)
		}
		e = strings.ReplaceAll(e, "gateway.Duration", "a duration like 1s or 500ms")
		msgs = append(msgs, e)
	}
	return strings.Join(msgs, "; ")
}

type section struct {
	name string
	keys []string
}

// configSections lists, for each config struct type, where it sits in the
// file and which keys it takes, so error messages can say what is allowed.
func configSections() map[string]section {
	out := map[string]section{}
	var walk func(t reflect.Type, name string)
	walk = func(t reflect.Type, name string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			keys = append(keys, tag)
			sub := tag
			if name != "the top level" {
				sub = name + "." + tag
			}
			if f.Type.Kind() == reflect.Slice {
				sub += "[]"
			}
			walk(f.Type, sub)
		}
		sort.Strings(keys)
		out[t.String()] = section{name: name, keys: keys}
	}
	walk(reflect.TypeOf(gateway.Config{}), "the top level")
	return out
}
