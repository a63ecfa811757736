package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const examplePath = "../config.example.yml"

// exampleWithS3 is config.example.yml with its commented-out storage.s3
// section switched on: "  # s3:" becomes "  s3:", and each "  #   " line
// below it loses its "#" (the notes after a value stay YAML comments).
func exampleWithS3(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in, found := false, false
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case l == "  # s3:":
			l, in, found = "  s3:", true, true
		case in && strings.HasPrefix(l, "  #   "):
			l = "    " + strings.TrimPrefix(l, "  #   ")
		default:
			in = false
		}
		out = append(out, l)
	}
	if !found {
		t.Fatalf("%s has no commented-out \"  # s3:\" section", examplePath)
	}
	return []byte(strings.Join(out, "\n"))
}

// The example's storage.s3 section, switched on, parses and validates, and
// every value it shows is the one an s3 section without that key gets, in
// effect: the values it writes out where the code keeps a zero are the
// registry's defaults for that zero (redirect_expiry 0: 20m, part_size
// empty: 16MiB; see registry.Options).
func TestExampleS3SectionIsTheDefaults(t *testing.T) {
	cfg, err := Parse(examplePath, exampleWithS3(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ex := cfg.Storage.S3
	if ex == nil {
		t.Fatal("the switched-on example has no storage.s3")
	}
	bare, err := Parse("bare.yml", []byte("storage:\n  s3:\n    endpoint: "+ex.Endpoint+"\n    bucket: "+ex.Bucket+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	def := *bare.Storage.S3

	if got, want := ex.RedirectMinSizeBytes(), def.RedirectMinSizeBytes(); got != want {
		t.Errorf("redirect_min_size: example %d bytes, default %d", got, want)
	}
	if ex.RedirectExpiry != 20*time.Minute || def.RedirectExpiry != 0 {
		t.Errorf("redirect_expiry: example %s, default %s; want 20m, and 0 (which the registry reads as 20m)", ex.RedirectExpiry, def.RedirectExpiry)
	}
	if ex.PartSizeBytes() != 16<<20 || def.PartSizeBytes() != 0 {
		t.Errorf("part_size: example %d bytes, default %d; want 16MiB, and 0 (which the registry reads as 16MiB)", ex.PartSizeBytes(), def.PartSizeBytes())
	}
	got := *ex
	got.RedirectMinSize, got.RedirectExpiry, got.PartSize = def.RedirectMinSize, def.RedirectExpiry, def.PartSize
	if !reflect.DeepEqual(got, def) {
		t.Errorf("storage.s3 in the example: %+v\nwithout those keys:        %+v", got, def)
	}
}

// Every key the configuration has appears in the example, which claims to
// show every option.
func TestExampleNamesEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, key := range yamlKeys(typeOfConfig, "") {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !regexp.MustCompile(`(?m)(^|[\s{,#])` + regexp.QuoteMeta(leaf) + `:`).MatchString(text) {
			t.Errorf("%s: not in %s", key, examplePath)
		}
	}
}

// yamlKeys lists the dotted keys of t's yaml-tagged fields, nested ones
// included ("[]" stands for a list element).
func yamlKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		sub := key + "."
		if f.Type.Kind() == reflect.Slice {
			sub = key + "[]."
		}
		keys = append(keys, yamlKeys(f.Type, sub)...)
	}
	return keys
}

// The example's gc section shows the defaults.
func TestExampleGCIsTheDefaults(t *testing.T) {
	cfg, err := Load(examplePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GC != Default().GC {
		t.Fatalf("gc in %s: %+v, defaults %+v", examplePath, cfg.GC, Default().GC)
	}
}
