package harness

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ImageFile is a file of random bytes at Path in a built image.
type ImageFile struct {
	Path string // in the image, like "/data.bin"
	Size int64
}

// BuildScratchImage builds a FROM scratch image tagged ref with docker's
// classic builder, one layer per file in order (random, incompressible
// bytes), removes it from the daemon when the test ends, and returns its
// image ID.
func (x *Tools) BuildScratchImage(ref string, files ...ImageFile) string {
	t := x.t
	t.Helper()
	dir, err := os.MkdirTemp(x.Dir, "ctx-")
	if err != nil {
		t.Fatal(err)
	}
	df := "FROM scratch\n"
	for i, f := range files {
		name := fmt.Sprintf("%d-%s", i, path.Base(f.Path))
		if err := writeRandom(filepath.Join(dir, name), f.Size); err != nil {
			t.Fatal(err)
		}
		df += "COPY " + name + " " + f.Path + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	x.RunCmd(Cmd{Args: []string{"docker", "build", "-t", ref, dir}, Env: []string{"DOCKER_BUILDKIT=0"}})
	t.Cleanup(func() { _, _ = x.Exec(Cmd{Args: []string{"docker", "image", "rm", "-f", ref}}) })
	return strings.TrimSpace(x.Run("docker", "image", "inspect", "-f", "{{.Id}}", ref))
}

// writeRandom writes size random bytes to a new file at p.
func writeRandom(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
