// Package configfile reads config.yaml for esp32gw run and esp32gw check:
// strict decoding, gateway.Config's defaults and validation, and errors
// that say FILE:LINE: field: what is wrong and what is allowed, every
// problem at once, one per line.
package configfile

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/esp32gw/esp32gw/gateway"
)

// Load reads, strictly decodes and validates a config file. Every problem is
// reported at once, one per line, each naming the field, its line where
// known, and what is allowed.
func Load(path string) (gateway.Config, error) {
	cfg := gateway.DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return cfg, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var problems []problem
	if root.Kind != 0 {
		// Unknown keys and bad durations first: the decoder would stop at the
		// first bad duration and name neither its field nor its line.
		problems = checkNodes(&root, reflect.TypeOf(cfg), "")
		if err := root.Decode(&cfg); err != nil {
			problems = append(problems, explainDecodeError(err, valueNodes(&root))...)
		}
	}
	cfg.ApplyDeviceDefaults()
	if err := cfg.Validate(); err != nil {
		lines := fieldLines(&root)
		for _, e := range unjoin(err) {
			var fe *gateway.FieldError
			if !errors.As(e, &fe) {
				problems = append(problems, problem{msg: e.Error()})
				continue
			}
			if reported(problems, fe.Field) {
				continue // its YAML error says more
			}
			problems = append(problems, problem{line: lookupLine(lines, fe.Field), field: fe.Field, msg: fe.Msg})
		}
	}
	if len(problems) == 0 {
		return cfg, nil
	}
	sort.SliceStable(problems, func(i, j int) bool {
		li, lj := problems[i].line, problems[j].line
		return li != 0 && (lj == 0 || li < lj)
	})
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.format(path)
	}
	return cfg, errors.New(strings.Join(msgs, "\n"))
}

// problem is one thing wrong with the config file.
type problem struct {
	line  int    // 0: unknown
	field string // "devices[1].url"; "" for the file as a whole
	msg   string
}

func (p problem) format(path string) string {
	s := path
	if p.line > 0 {
		s += fmt.Sprintf(":%d", p.line)
	}
	s += ": "
	if p.field != "" {
		s += p.field + ": "
	}
	return s + p.msg
}

// reported says whether field or a parent of it already has a problem.
func reported(ps []problem, field string) bool {
	for _, p := range ps {
		if p.field != "" && (field == p.field || strings.HasPrefix(field, p.field+".") || strings.HasPrefix(field, p.field+"[")) {
			return true
		}
	}
	return false
}

var (
	durationType = reflect.TypeOf(gateway.Duration(0))
	byteSizeType = reflect.TypeOf(gateway.ByteSize(0))
)

// checkNodes walks the YAML tree beside the config type t and reports keys
// that t does not have and values of Duration and ByteSize fields that do
// not parse. A bad value is replaced by zero so decoding can go on and report
// the rest.
func checkNodes(n *yaml.Node, t reflect.Type, path string) []problem {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []problem
	switch {
	case n.Kind == yaml.DocumentNode:
		for _, c := range n.Content {
			out = append(out, checkNodes(c, t, path)...)
		}
	case t == durationType:
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			if _, err := gateway.ParseDuration(n.Value); err != nil {
				out = append(out, problem{n.Line, path, fmt.Sprintf("not a duration: want e.g. 500ms, 2s or 1m, got %q", n.Value)})
				n.Value, n.Tag, n.Style = "0s", "!!str", 0
			}
		}
	case t == byteSizeType:
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			var b gateway.ByteSize
			if err := b.UnmarshalText([]byte(n.Value)); err != nil {
				out = append(out, problem{n.Line, path, err.Error()})
				n.Value, n.Tag, n.Style = "0", "!!int", 0
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields, keys := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + p
			}
			f, ok := fields[k.Value]
			switch {
			case k.Value == "<<":
			case !ok:
				where := path
				if where == "" {
					where = "the top level"
				}
				out = append(out, problem{k.Line, "", fmt.Sprintf("unknown key %q in %s (allowed: %s)", k.Value, where, strings.Join(keys, ", "))})
			default:
				out = append(out, checkNodes(v, f.Type, p)...)
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			out = append(out, checkNodes(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

// yamlFields maps a struct's yaml keys to its fields, and lists the keys sorted.
func yamlFields(t reflect.Type) (map[string]reflect.StructField, []string) {
	fields := map[string]reflect.StructField{}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f
		keys = append(keys, tag)
	}
	sort.Strings(keys)
	return fields, keys
}

var cannotUnmarshal = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")

// explainDecodeError turns yaml.v3's type errors ("line 4: cannot unmarshal
// !!str `high` into int") into problems that name the field and what it takes.
func explainDecodeError(err error, values []valueNode) []problem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []problem{{msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	// The field is the value of the error's kind on the error's line.
	kinds := map[string]yaml.Kind{"map": yaml.MappingNode, "seq": yaml.SequenceNode}
	fieldAt := func(line int, tag string) string {
		var ps []string
		for _, v := range values {
			want, ok := kinds[tag]
			if !ok {
				want = yaml.ScalarNode
			}
			if v.line == line && v.kind == want {
				ps = append(ps, v.path)
			}
		}
		return commonPath(ps)
	}
	var out []problem
	for _, e := range te.Errors {
		m := cannotUnmarshal.FindStringSubmatch(e)
		if m == nil {
			out = append(out, problem{msg: e})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		got := m[2]
		if m[3] != "" {
			got = strconv.Quote(m[3])
		} else {
			got = "a " + map[string]string{"seq": "list", "map": "mapping"}[got]
		}
		out = append(out, problem{line, fieldAt(line, m[2]), fmt.Sprintf("want %s, got %s", describeType(m[4]), got)})
	}
	return out
}

// commonPath is the longest field path that every path in ps starts with:
// the one field on a line, or the mapping that a flow mapping's keys share.
func commonPath(ps []string) string {
	if len(ps) == 0 {
		return ""
	}
	c := ps[0]
	for _, p := range ps[1:] {
		for c != "" && p != c && !strings.HasPrefix(p, c+".") && !strings.HasPrefix(p, c+"[") {
			i := strings.LastIndexAny(c, ".[")
			if i < 0 {
				c = ""
				break
			}
			c = c[:i]
		}
	}
	return c
}

func describeType(goType string) string {
	switch goType {
	case "int", "int64", "uint", "uint64":
		return "a whole number"
	case "bool":
		return "true or false"
	case "string":
		return "a single value (quote it if it holds ':' or '#')"
	case "[]string":
		return "a list like [a, b]"
	case "[]gateway.DeviceConfig":
		return "a list of devices (- id: …)"
	}
	for name, sec := range configSections() {
		if name == goType || "*"+name == goType {
			return "a mapping with keys " + strings.Join(sec.keys, ", ")
		}
	}
	return goType
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

// valueNode is where a field's value starts in the file, and its kind.
type valueNode struct {
	path string
	line int
	kind yaml.Kind
}

// valueNodes lists every value in the file with its field path.
func valueNodes(root *yaml.Node) []valueNode {
	var out []valueNode
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
			return
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
		if path != "" {
			out = append(out, valueNode{path, n.Line, n.Kind})
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
