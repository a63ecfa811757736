package importer

import (
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		s       ProgressSnapshot
		elapsed time.Duration
		want    string
	}{
		{ProgressSnapshot{Objects: 3, ObjectsTotal: 10, Bytes: 1 << 20, BytesTotal: 3 << 20}, 2 * time.Second,
			"3/10 objects, 1.0 MiB/3.0 MiB, 512.0 KiB/s, ETA 4s"},
		{ProgressSnapshot{ObjectsTotal: 10, BytesTotal: 100}, 0, "0/10 objects, 0 B/100 B, 0 B/s, ETA ?"},
		{ProgressSnapshot{Objects: 10, ObjectsTotal: 10, Bytes: 5 << 30, BytesTotal: 5 << 30}, time.Minute,
			"10/10 objects, 5.0 GiB/5.0 GiB, 85.3 MiB/s, ETA 0s"},
	} {
		if got := c.s.Line(c.elapsed); got != c.want {
			t.Errorf("%+v after %s: %q, want %q", c.s, c.elapsed, got, c.want)
		}
	}
}
