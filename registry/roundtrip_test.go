package registry

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// A full push and pull with go-containerregistry's client.
func TestImageRoundTrip(t *testing.T) {
	e := newEnv(t)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	// Pushing again only finds what is there.
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("second push: %v", err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	want, _ := img.Digest()
	got, err := pulled.Digest()
	if err != nil || got != want {
		t.Errorf("pulled digest %v (%v), want %v", got, err, want)
	}
	if err := validate.Image(pulled); err != nil {
		t.Errorf("pulled image invalid: %v", err)
	}
	// The same image by digest, from a second replica on the same store.
	other := newEnvOn(t, e.dir)
	byDigest, err := name.ParseReference(strings.TrimPrefix(other.srv.URL, "http://")+"/team/app@"+want.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err = remote.Image(byDigest)
	if err != nil {
		t.Fatalf("pull by digest: %v", err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Errorf("pulled image invalid: %v", err)
	}
	tags, err := remote.List(ref.Context())
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Errorf("tags %v (%v)", tags, err)
	}
}
