// Package check tests Slipway's Kubernetes manifests (deploy/kubernetes)
// and Helm chart (deploy/helm/slipway): every object decodes strictly into
// the Kubernetes API types, the objects fit together (selectors, names,
// mounts, probes), the configuration passes Slipway's own validation, and
// the chart's default rendering is the plain manifests in substance. It is
// a module of its own so that k8s.io/* stays out of Slipway's go.mod; `make
// deploy-check` runs it with helm on PATH.
package check

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/config"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

const name = "slipway"

func TestManifests(t *testing.T) {
	o := loadManifests(t)
	want := []string{"ConfigMap/slipway", "Deployment/slipway", "PodDisruptionBudget/slipway", "Secret/slipway", "Service/slipway"}
	if got := o.keys(); !slices.Equal(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	checkRelease(t, o, name, 3)
	// The placeholders must keep a pod from starting, as secret.yaml says.
	sec := get[*corev1.Secret](t, o, "Secret", name)
	env := map[string]string{"SLIPWAY_HTTP_SECRET": sec.StringData["http-secret"]}
	if _, err := config.Parse("config.yml", configOf(t, o), mapEnv(env)); err == nil || !strings.Contains(err.Error(), "http.secret") {
		t.Errorf("the placeholder http-secret passes validation (err %v)", err)
	}
	if _, err := x509.ParsePKCS8PrivateKey([]byte(sec.StringData["token.pem"])); err == nil {
		t.Error("the placeholder token.pem is a key")
	}
}

func TestChartDefault(t *testing.T) {
	h := helmTemplate(t)
	checkRelease(t, h, name, 3)
	p := loadManifests(t)
	if got, want := h.keys(), p.keys(); !slices.Equal(got, want) {
		t.Fatalf("helm renders %v, the manifests hold %v", got, want)
	}
	sameSubstance(t, p, h)
	// Generated: a P-256 key, as auth.algorithm ES256 needs, and a
	// secret long enough for http.secret.
	sec := get[*corev1.Secret](t, h, "Secret", name)
	block, _ := pem.Decode(sec.Data["token.pem"])
	if block == nil {
		t.Fatalf("generated token.pem is not PEM: %q", sec.Data["token.pem"])
	}
	k, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil || k.Curve != elliptic.P256() {
		t.Fatalf("generated token.pem: %v (want a P-256 key)", err)
	}
	if n := len(sec.Data["http-secret"]); n < 32 {
		t.Errorf("generated http-secret has %d bytes", n)
	}
}

// TestChartOptions: an existing Secret replaces the chart's, the Ingress
// renders and routes to the Service, values reach the Deployment.
func TestChartOptions(t *testing.T) {
	h := helmTemplate(t, "--set", "secret.existingSecret=registry-keys", "--set", "ingress.enabled=true",
		"--set", "ingress.className=nginx", "--set", "replicaCount=5", "--set", "image.tag=v1.2.3")
	if _, ok := h.byKey["Secret/"+name]; ok {
		t.Error("a Secret is rendered although secret.existingSecret is set")
	}
	d := get[*appsv1.Deployment](t, h, "Deployment", name)
	if got := *d.Spec.Replicas; got != 5 {
		t.Errorf("replicas %d, want 5", got)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "slipway:v1.2.3" {
		t.Errorf("image %q", got)
	}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name != "registry-keys" {
			t.Errorf("env %s reads Secret %q", e.Name, r.SecretKeyRef.Name)
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName != "registry-keys" {
			t.Errorf("volume %s mounts Secret %q", v.Name, v.Secret.SecretName)
		}
	}
	ing := get[*networkingv1.Ingress](t, h, "Ingress", name)
	svc := get[*corev1.Service](t, h, "Service", name)
	b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	if b.Name != svc.Name || b.Port.Name != svc.Spec.Ports[0].Name {
		t.Errorf("ingress backend %s:%s, service %s:%s", b.Name, b.Port.Name, svc.Name, svc.Spec.Ports[0].Name)
	}
}

// TestChartRefusesFilesystem: replicas without S3 would each be a registry
// of their own (and the pods have no writable data folder); the chart
// refuses to render them.
func TestChartRefusesFilesystem(t *testing.T) {
	_, err := runHelmTemplate("--set", "config.storage.s3=null")
	if err == nil || !strings.Contains(err.Error(), "config.storage.s3 is required") {
		t.Errorf("filesystem storage rendered (err %v)", err)
	}
}

// TestChartIngressHost: an Ingress for another host than http.public_url
// would send clients elsewhere for their tokens; the chart refuses it.
func TestChartIngressHost(t *testing.T) {
	_, err := runHelmTemplate("--set", "ingress.enabled=true", "--set", "ingress.host=other.example.com")
	if err == nil || !strings.Contains(err.Error(), "is not the host of config.http.public_url") {
		t.Errorf("an Ingress host other than public_url's rendered (err %v)", err)
	}
}

// checkRelease asserts what any rendering must hold: replicas, probes,
// security, selectors, references, and a valid S3 configuration.
func checkRelease(t *testing.T, o objects, name string, replicas int32) {
	t.Helper()
	d := get[*appsv1.Deployment](t, o, "Deployment", name)
	pod := d.Spec.Template
	if got := *d.Spec.Replicas; got != replicas {
		t.Errorf("%s: replicas %d, want %d", o.source, got, replicas)
	}
	podLabels := labels.Set(pod.Labels)
	matches := func(what string, sel *metav1.LabelSelector) {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("%s: %s selector %v does not select the pods (%v; %v)", o.source, what, sel, podLabels, err)
		}
	}
	matches("Deployment", d.Spec.Selector)
	matches("PodDisruptionBudget", get[*policyv1.PodDisruptionBudget](t, o, "PodDisruptionBudget", name).Spec.Selector)
	svc := get[*corev1.Service](t, o, "Service", name)
	matches("Service", &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
	for _, c := range pod.Spec.TopologySpreadConstraints {
		matches("topology spread "+c.TopologyKey, c.LabelSelector)
	}
	if !slices.ContainsFunc(pod.Spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
		return c.TopologyKey == "kubernetes.io/hostname" && c.WhenUnsatisfiable == corev1.DoNotSchedule
	}) {
		t.Errorf("%s: replicas are not spread across nodes", o.source)
	}
	pdb := get[*policyv1.PodDisruptionBudget](t, o, "PodDisruptionBudget", name)
	if u := pdb.Spec.MaxUnavailable; u == nil || u.IntValue() != 1 {
		t.Errorf("%s: PodDisruptionBudget maxUnavailable %v, want 1", o.source, u)
	}

	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", o.source, len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	port := containerPort(t, c, "http")
	if svc.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("%s: Service targets %v, not the port named http", o.source, svc.Spec.Ports[0].TargetPort)
	}
	checkProbe(t, o.source, "readiness", c.ReadinessProbe, "/readyz")
	checkProbe(t, o.source, "liveness", c.LivenessProbe, "/healthz")
	checkProbe(t, o.source, "startup", c.StartupProbe, "/healthz")
	checkSecurity(t, o.source, pod.Spec, c)
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("%s: no %s request", o.source, r)
		}
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.Cmp(c.Resources.Requests[corev1.ResourceMemory]) < 0 {
		t.Errorf("%s: memory limit %v below the request", o.source, q.String())
	}
	if m := mountOf(c, "/tmp"); m == nil || volumeOf(pod.Spec, m.Name).EmptyDir == nil {
		t.Errorf("%s: /tmp is not a writable emptyDir", o.source)
	}

	cfg := checkConfig(t, o, d)
	if !strings.HasSuffix(cfg.HTTP.Addr, ":"+itoa(port)) {
		t.Errorf("%s: http.addr %q, container port %d", o.source, cfg.HTTP.Addr, port)
	}
	// SIGKILL must not come before the preStop sleep and Slipway's drain
	// (http.drain_delay, then http.shutdown_timeout for what is in flight).
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	var preStop time.Duration
	if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	}
	if grace <= preStop+cfg.HTTP.DrainDelay+cfg.HTTP.ShutdownTimeout {
		t.Errorf("%s: terminationGracePeriodSeconds %s <= preStop %s + http.drain_delay %s + http.shutdown_timeout %s",
			o.source, grace, preStop, cfg.HTTP.DrainDelay, cfg.HTTP.ShutdownTimeout)
	}
}

func checkProbe(t *testing.T, source, what string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no %s probe over HTTP", source, what)
		return
	}
	if p.HTTPGet.Path != path || p.HTTPGet.Port.StrVal != "http" {
		t.Errorf("%s: %s probe GET %s on %v, want %s on http", source, what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
	}
}

func checkSecurity(t *testing.T, source string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	ps, cs := pod.SecurityContext, c.SecurityContext
	if ps == nil || cs == nil {
		t.Fatalf("%s: no pod or container securityContext", source)
	}
	is := func(b *bool) bool { return b != nil && *b }
	uid := func(p *int64) bool { return p != nil && *p == 65532 }
	switch {
	case !is(ps.RunAsNonRoot) || !is(cs.RunAsNonRoot):
		t.Errorf("%s: runAsNonRoot not set on pod and container", source)
	case !uid(ps.RunAsUser) || !uid(cs.RunAsUser) || !uid(ps.RunAsGroup):
		t.Errorf("%s: not uid/gid 65532", source)
	case !is(cs.ReadOnlyRootFilesystem):
		t.Errorf("%s: root filesystem writable", source)
	case cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation not false", source)
	case cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities %v, want drop ALL", source, cs.Capabilities)
	case ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccomp not RuntimeDefault", source)
	case pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken:
		t.Errorf("%s: service account token mounted", source)
	case pod.EnableServiceLinks == nil || *pod.EnableServiceLinks:
		t.Errorf("%s: service links on (SLIPWAY_* variables beside the configuration's)", source)
	}
}

// sameSubstance compares the chart's objects with the manifests' on what
// they do: specs (but for the chart's checksum annotation), the
// configuration as Slipway loads it, and the Secret's keys.
func sameSubstance(t *testing.T, p, h objects) {
	t.Helper()
	pd, hd := get[*appsv1.Deployment](t, p, "Deployment", name), get[*appsv1.Deployment](t, h, "Deployment", name)
	hspec := hd.Spec.DeepCopy()
	if _, ok := hspec.Template.Annotations["checksum/config"]; !ok {
		t.Error("the chart's pods have no checksum/config annotation (a config change would not roll them)")
	}
	delete(hspec.Template.Annotations, "checksum/config")
	if !equality.Semantic.DeepEqual(pd.Spec, *hspec) {
		t.Errorf("Deployment specs differ:\nmanifests %+v\nchart     %+v", pd.Spec, *hspec)
	}
	ps, hs := get[*corev1.Service](t, p, "Service", name), get[*corev1.Service](t, h, "Service", name)
	if !equality.Semantic.DeepEqual(ps.Spec, hs.Spec) {
		t.Errorf("Service specs differ:\n%+v\n%+v", ps.Spec, hs.Spec)
	}
	pp, hp := get[*policyv1.PodDisruptionBudget](t, p, "PodDisruptionBudget", name), get[*policyv1.PodDisruptionBudget](t, h, "PodDisruptionBudget", name)
	if !equality.Semantic.DeepEqual(pp.Spec, hp.Spec) {
		t.Errorf("PodDisruptionBudget specs differ:\n%+v\n%+v", pp.Spec, hp.Spec)
	}
	env := mapEnv(testEnv(t, pd))
	pc, err := config.Parse("manifests", configOf(t, p), env)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := config.Parse("chart", configOf(t, h), env)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(pc, hc) {
		t.Errorf("configurations differ:\nmanifests %+v\nchart     %+v", pc, hc)
	}
	sk := slices.Sorted(maps.Keys(get[*corev1.Secret](t, p, "Secret", name).StringData))
	hk := slices.Sorted(maps.Keys(get[*corev1.Secret](t, h, "Secret", name).Data))
	// The chart leaves out admin-password when it has none (optional).
	if !slices.Equal(slices.DeleteFunc(sk, func(k string) bool { return k == "admin-password" }), hk) {
		t.Errorf("Secret keys: manifests %v, chart %v", sk, hk)
	}
}
