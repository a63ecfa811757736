package importer

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Progress counts a run's work as it goes: the objects (blobs,
// manifests, tags) and blob bytes of the repositories planned so far
// (planning runs a few repositories ahead of the import, so the totals
// grow until the last one is planned), and how many are done (imported,
// found present or skipped). Safe for concurrent use; the zero value is
// ready.
type Progress struct {
	objects, objectsTotal atomic.Int64
	bytes, bytesTotal     atomic.Int64
}

// ProgressSnapshot is Progress at one moment.
type ProgressSnapshot struct {
	Objects, ObjectsTotal int64
	Bytes, BytesTotal     int64
}

// Snapshot reads the counters.
func (p *Progress) Snapshot() ProgressSnapshot {
	return ProgressSnapshot{Objects: p.objects.Load(), ObjectsTotal: p.objectsTotal.Load(), Bytes: p.bytes.Load(), BytesTotal: p.bytesTotal.Load()}
}

func (p *Progress) plan(objects, bytes int64) {
	p.objectsTotal.Add(objects)
	p.bytesTotal.Add(bytes)
}

func (p *Progress) done(objects, bytes int64) {
	p.objects.Add(objects)
	p.bytes.Add(bytes)
}

// Line is the progress line for s after elapsed: objects and bytes done
// of the totals, the byte rate, and the time left at that rate.
func (s ProgressSnapshot) Line(elapsed time.Duration) string {
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(s.Bytes) / secs
	}
	eta := "?"
	switch {
	case s.BytesTotal > 0 && s.Bytes >= s.BytesTotal:
		eta = "0s"
	case rate > 0:
		eta = (time.Duration(float64(s.BytesTotal-s.Bytes)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%d/%d objects, %s/%s, %s/s, ETA %s",
		s.Objects, s.ObjectsTotal, humanBytes(float64(s.Bytes)), humanBytes(float64(s.BytesTotal)), humanBytes(rate), eta)
}

func humanBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	suffixes := "KMGTPE"
	i := 0
	for n /= unit; n >= unit && i < len(suffixes)-1; i++ {
		n /= unit
	}
	return fmt.Sprintf("%.1f %ciB", n, suffixes[i])
}

// ShowProgress rewrites one line on w (a terminal) with p's progress
// every interval until stop is called, which prints the last state and
// ends the line. It writes nothing else to w.
func ShowProgress(ctx context.Context, w io.Writer, p *Progress, interval time.Duration) (stop func()) {
	begun := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	print := func() { fmt.Fprintf(w, "\r\033[K%s", p.Snapshot().Line(time.Since(begun))) }
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				print()
			}
		}
	}()
	return func() {
		cancel()
		<-done
		print()
		fmt.Fprintln(w)
	}
}
