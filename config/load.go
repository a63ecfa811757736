package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LookupEnv finds an environment variable; os.LookupEnv in production, a
// map in tests (so tests never touch the process environment).
type LookupEnv func(name string) (string, bool)

// Load reads the YAML file at path over Default() (path "" means defaults
// only), applies SLIPWAY_* overrides from env (nil: none) and validates.
// The error lists every problem, one per line, as "where: key: message".
func Load(path string, env LookupEnv) (Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		data = b
	}
	return Parse(path, data, env)
}

// Parse is Load on a file already read; name is used in messages.
func Parse(name string, data []byte, env LookupEnv) (Config, error) {
	cfg := Default()
	src := sources{file: name, lines: map[string]int{}, env: map[string]string{}}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeFile(name, data, &cfg, src.lines); err != nil {
			return Config{}, err
		}
	}
	var msgs []string
	if env != nil {
		msgs = applyEnv(&cfg, env, src.env)
		if v, ok := env(AdminPasswordEnv); ok {
			cfg.Auth.AdminPassword = v
		}
	}
	// An unset signing key follows the storage root, so one setting moves
	// all of a server's local state.
	if !src.set("auth.signing_key") {
		cfg.Auth.SigningKey = defaultSigningKey(cfg.Storage.Filesystem.Root)
	}
	for _, p := range cfg.problems() {
		msgs = append(msgs, format(src.where(p.key), p))
	}
	if len(msgs) > 0 {
		return Config{}, errors.New(strings.Join(msgs, "\n"))
	}
	cfg.HTTP.PublicURL = strings.TrimSuffix(cfg.HTTP.PublicURL, "/")
	return cfg, nil
}

// sources remembers where each key's value came from, for messages.
type sources struct {
	file  string
	lines map[string]int    // dotted key -> line in file
	env   map[string]string // dotted key -> variable that overrode it
}

// where locates a key: the variable that set it, else its line in the file,
// else the nearest enclosing key's line (cross-field checks name a section),
// else just the file.
func (s sources) where(key string) string {
	if name, ok := s.env[key]; ok {
		return "env " + name
	}
	for k := key; k != ""; k = parentKey(k) {
		if line, ok := s.lines[k]; ok {
			return fmt.Sprintf("%s:%d", s.file, line)
		}
	}
	return s.file
}

// set reports whether the file or a variable gave key a value.
func (s sources) set(key string) bool {
	_, inEnv := s.env[key]
	_, inFile := s.lines[key]
	return inEnv || inFile
}

func parentKey(k string) string {
	if i := strings.LastIndexAny(k, ".["); i >= 0 {
		return k[:i]
	}
	return ""
}

func format(where string, p problem) string {
	if where == "" {
		return p.key + ": " + p.msg
	}
	return where + ": " + p.key + ": " + p.msg
}

func joinProblems(ps []problem, where func(string) string) error {
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = format(where(p.key), p)
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// yamlLine matches yaml's "yaml: line 7: did not find expected key".
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError names the file on every line of a yaml error: a TypeError
// holds one message per problem ("line 3: mapping key "addr" already
// defined at line 2"), each of which becomes "name:3: …".
func yamlError(name string, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := make([]string, len(msgs))
	for i, msg := range msgs {
		msg = strings.TrimSpace(msg)
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			out[i] = fmt.Sprintf("%s:%s: %s", name, m[1], m[2])
		} else {
			out[i] = fmt.Sprintf("%s: %s", name, msg)
		}
	}
	return errors.New(strings.Join(out, "\n"))
}

// decodeFile lays the file over cfg. It first walks the node tree against
// Config's type so unknown keys and ill-typed values are reported with their
// full key and line (yaml's own errors name neither well), then decodes
// for real with KnownFields as the backstop.
func decodeFile(name string, data []byte, cfg *Config, lines map[string]int) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return yamlError(name, err)
	}
	if len(doc.Content) > 0 {
		w := walker{file: name, lines: lines}
		w.walk(doc.Content[0], typeOfConfig, "")
		if len(w.msgs) > 0 {
			return errors.New(strings.Join(w.msgs, "\n"))
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return yamlError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return yamlError(name, err)
	default:
		return fmt.Errorf("%s:%d: only one YAML document is allowed", name, extra.Line)
	}
}
