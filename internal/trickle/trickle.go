// Package trickle is a client that sends a request body a byte at a time,
// for tests (unit and black-box) of how the server bounds slow bodies.
package trickle

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Result is what a trickling client saw.
type Result struct {
	Status   int           // of the answer; 0: none came
	Answered time.Duration // from the end of the head to the answer's status line
	Closed   time.Duration // to the connection's end (EOF, or reset after the answer); -1: still open at the limit
}

// Send opens a connection to addr and sends a request head (hdr are
// "Name: value" lines) announcing a body of 100000 bytes, or a chunked one.
// Then it sends the body a space every interval, never all of it, while
// reading whatever the server answers, for at most limit. Spaces, because
// a JSON or form parser keeps waiting for more, as it would for a slow
// honest client.
func Send(addr, method, path string, chunked bool, interval, limit time.Duration, hdr ...string) (Result, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%s", method, path, addr, strings.Join(append(hdr, ""), "\r\n"))
	piece := " "
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
		piece = "1\r\n \r\n"
	} else {
		head += "Content-Length: 100000\r\n\r\n"
	}
	if _, err := io.WriteString(conn, head); err != nil {
		return Result{}, err
	}
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := io.WriteString(conn, piece); err != nil {
					return
				}
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	res := Result{Closed: -1}
	_ = conn.SetReadDeadline(start.Add(limit))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err == nil {
		res.Answered = time.Since(start)
		_, _ = fmt.Sscanf(line, "HTTP/1.1 %d", &res.Status)
	}
	_, err = io.Copy(io.Discard, br)
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		res.Closed = time.Since(start)
	}
	return res, nil
}
