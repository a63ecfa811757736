package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

var (
	typeOfConfig   = reflect.TypeFor[Config]()
	typeOfDuration = reflect.TypeFor[time.Duration]()
)

// walker checks a YAML node tree against a Go type, recording each key's
// line and a located message for every unknown key or ill-typed value.
type walker struct {
	file  string
	lines map[string]int
	msgs  []string
	// expanding are the anchors whose alias is being walked, outermost
	// first: one met again is a cycle.
	expanding map[*yaml.Node]bool
}

func (w *walker) fail(line int, key, format string, args ...any) {
	where := fmt.Sprintf("%s:%d", w.file, line)
	w.msgs = append(w.msgs, fmtProblem(where, key, fmt.Sprintf(format, args...)))
}

func fmtProblem(where, key, msg string) string {
	if key == "" {
		key = "(top level)"
	}
	if strings.ContainsFunc(key, unicode.IsControl) {
		// A YAML key may hold a line break ("? 0\n\n 0"); quoted, every
		// message stays one line that starts with where it comes from.
		key = strconv.Quote(key)
	}
	return format(where, problem{key: key, msg: msg})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, key string) {
	if n.Kind == yaml.AliasNode {
		// An anchor that merges or contains itself ("b: &b {<<: *b}") would
		// be walked forever: refuse it where it comes round again.
		if w.expanding[n.Alias] {
			w.fail(n.Line, key, "alias *%s refers to a mapping that contains it", n.Value)
			return
		}
		if w.expanding == nil {
			w.expanding = map[*yaml.Node]bool{}
		}
		w.expanding[n.Alias] = true
		defer delete(w.expanding, n.Alias)
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.walk(n, t.Elem(), key)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n.Line, key, "must be a mapping of keys, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" { // "<<: *anchor" merges another mapping in
				w.walk(v, t, key)
				continue
			}
			child := joinKey(key, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				w.fail(k.Line, child, "unknown key")
				continue
			}
			w.lines[child] = k.Line
			w.walk(v, ft, child)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n.Line, key, "must be a mapping, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			child := joinKey(key, n.Content[i].Value)
			w.lines[child] = n.Content[i].Line
			w.walk(n.Content[i+1], t.Elem(), child)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n.Line, key, "must be a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			child := fmt.Sprintf("%s[%d]", key, i)
			w.lines[child] = e.Line
			w.walk(e, t.Elem(), child)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n.Line, key, "must be a single value, got %s", describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(n.Line, key, "%s, got %q", want(t), n.Value)
		}
	}
}

// yamlFields maps a struct's yaml key names to field types, following
// ",inline" fields as the yaml package does.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // the yaml package's default
		}
		out[name] = f.Type
	}
	return out
}

func joinKey(parent, k string) string {
	if parent == "" {
		return k
	}
	return parent + "." + k
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// want says what a scalar field accepts, in the words a config author uses.
func want(t reflect.Type) string {
	if t == typeOfDuration {
		return `must be a duration like "30s" or "1m30s"`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "must be true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "must be a whole number"
	case reflect.Float32, reflect.Float64:
		return "must be a number"
	case reflect.Slice:
		return "must be a comma-separated list"
	}
	return "must be a " + t.String()
}
