package integration

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/integration/internal/harness"
)

// toolchainImage is the Dockerfile's build-stage base made from this
// machine's Go (Docker Hub is out of reach in CI): `go env GOROOT` as
// /usr/local/go, the host's CA bundle (for the module proxy) and an empty
// /tmp, nothing else. The Dockerfile's RUN lines are in exec form, so no
// shell is needed. It is tagged by Go version and kept between runs: the
// next run, and the build cache keyed on it, reuse it.
func toolchainImage(t *testing.T, tools *harness.Tools) string {
	t.Helper()
	goenv := strings.Fields(tools.Run("go", "env", "GOVERSION", "GOROOT"))
	if len(goenv) != 2 {
		t.Fatalf("go env GOVERSION GOROOT: %q", goenv)
	}
	tag := "slipway-it/go:" + goenv[0]
	if _, err := tools.Exec(harness.Cmd{Args: []string{"docker", "image", "inspect", "-f", "{{.Id}}", tag}}); err == nil {
		return tag
	}
	start := time.Now()
	tarball := filepath.Join(t.TempDir(), "go.tar")
	writeToolchainTar(t, tarball, goenv[1])
	tools.RunCmd(harness.Cmd{Args: []string{"docker", "import",
		"-c", "ENV PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin", "-c", "ENV HOME=/root", "-c", "ENV GOPATH=/go",
		tarball, tag}, Timeout: 10 * time.Minute})
	t.Logf("made %s from %s in %s", tag, goenv[1], time.Since(start).Round(time.Second))
	return tag
}

// writeToolchainTar writes the root filesystem toolchainImage imports.
func writeToolchainTar(t *testing.T, path, goroot string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, d := range []struct {
		name string
		mode int64
	}{{"tmp/", 0o1777}, {"root/", 0o700}, {"etc/", 0o755}, {"etc/ssl/", 0o755}, {"etc/ssl/certs/", 0o755}, {"usr/", 0o755}, {"usr/local/", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the host's CA bundle, for the module proxy: %v", err)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Size: int64(len(ca)), ModTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(ca); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(goroot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return addToTar(tw, p, "usr/local/go/"+filepath.ToSlash(strings.TrimPrefix(strings.TrimPrefix(p, goroot), "/")))
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("tar of %s: %v", goroot, err)
	}
}

// addToTar adds the file, folder or link at p as name, owned by root.
func addToTar(tw *tar.Writer, p, name string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = strings.TrimSuffix(name, "/")
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil || !fi.Mode().IsRegular() {
		return err
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(tw, src)
	return err
}
