package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// manifestsDir and chartDir are relative to this package's folder, where
// go test runs.
const (
	manifestsDir = "../kubernetes"
	chartDir     = "../helm/slipway"
	// releaseName makes the chart's object names those of the plain
	// manifests ("slipway").
	releaseName = "slipway"
)

// objects is one rendering: every object by kind and name.
type objects struct {
	source string
	byKey  map[string]runtime.Object // "Kind/name"
}

func key(kind, name string) string { return kind + "/" + name }

func (o objects) keys() []string {
	ks := make([]string, 0, len(o.byKey))
	for k := range o.byKey {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// get returns the object of type T named name, failing the test without it.
func get[T runtime.Object](t *testing.T, o objects, kind, name string) T {
	t.Helper()
	obj, ok := o.byKey[key(kind, name)]
	if !ok {
		t.Fatalf("%s: no %s %q (have %v)", o.source, kind, name, o.keys())
	}
	v, ok := obj.(T)
	if !ok {
		t.Fatalf("%s: %s %q decoded as %T", o.source, kind, name, obj)
	}
	return v
}

// newDecoder decodes YAML strictly into the Kubernetes API types of the
// kinds Slipway's manifests use: an unknown or duplicated field, or a kind
// not registered here, is an error.
func newDecoder() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err) // only on a programming error in the list above
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
}

// decodeAll decodes every YAML document of data (documents holding only
// comments are skipped) into into, named by source for messages.
func decodeAll(dec runtime.Decoder, source string, data []byte, into objects) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if isEmptyDoc(doc) {
			continue
		}
		// A strict decoding error comes with the object; it is an error
		// all the same.
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		meta, ok := obj.(interface{ GetName() string })
		if !ok || meta.GetName() == "" {
			return fmt.Errorf("%s: document %d (%s) has no metadata.name", source, i, gvk.Kind)
		}
		name := meta.GetName()
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			return fmt.Errorf("%s: %s %q: %s", source, gvk.Kind, name, strings.Join(msgs, "; "))
		}
		k := key(gvk.Kind, name)
		if _, dup := into.byKey[k]; dup {
			return fmt.Errorf("%s: %s twice", source, k)
		}
		into.byKey[k] = obj
	}
}

func isEmptyDoc(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") && s != "---" {
			return false
		}
	}
	return true
}

// loadManifests decodes every object of deploy/kubernetes/*.yaml, except
// kustomization.yaml (not an API object), whose resources list must name
// every other file.
func loadManifests(t *testing.T) objects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestsDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", manifestsDir, err)
	}
	o := objects{source: manifestsDir, byKey: map[string]runtime.Object{}}
	dec := newDecoder()
	var resources []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		resources = append(resources, filepath.Base(f))
		if err := decodeAll(dec, f, data, o); err != nil {
			t.Fatal(err)
		}
	}
	kust, err := os.ReadFile(filepath.Join(manifestsDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resources {
		if !strings.Contains(string(kust), "\n  - "+r+"\n") {
			t.Errorf("kustomization.yaml does not list %s in resources", r)
		}
	}
	return o
}

// runHelmTemplate runs helm template (helm from $HELM, else PATH) on the
// chart with args; the error holds helm's stderr.
func runHelmTemplate(args ...string) ([]byte, error) {
	helm := os.Getenv("HELM")
	if helm == "" {
		helm = "helm"
	}
	argv := append([]string{"template", releaseName, chartDir, "--namespace", "registry"}, args...)
	cmd := exec.Command(helm, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return out, nil
}

// helmTemplate renders the chart and decodes every object.
func helmTemplate(t *testing.T, args ...string) objects {
	t.Helper()
	out, err := runHelmTemplate(args...)
	if err != nil {
		t.Fatal(err)
	}
	o := objects{source: "helm template " + strings.Join(args, " "), byKey: map[string]runtime.Object{}}
	if err := decodeAll(newDecoder(), o.source, out, o); err != nil {
		t.Fatal(err)
	}
	return o
}
