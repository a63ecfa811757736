package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/slipway/slipway/config"
)

// healthcheck is `slipway healthcheck [--config FILE] [--url URL]
// [--timeout D]`: one GET of /healthz, exit 0 on a 200 and 1 otherwise.
// It exists for images without a shell or curl (the Dockerfile's
// HEALTHCHECK): without --url it asks the port of http.addr, as serve
// would load it from the same file and SLIPWAY_* variables, on loopback.
func healthcheckCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("healthcheck", "[--config FILE] [--url URL] [--timeout D]", stderr)
	path := configFlag(fl)
	target := fl.String("url", "", "`URL` to GET (default: http://127.0.0.1:<port of http.addr>/healthz)")
	timeout := fl.Duration("timeout", 3*time.Second, "give up after this `duration`")
	if code, ok := parseFlags(fl, args); !ok {
		return code
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "healthcheck: unexpected argument %q\n", fl.Arg(0))
		return 2
	}
	if *target == "" {
		cfg, err := config.Load(*path, env)
		if err != nil {
			fmt.Fprintf(stderr, "healthcheck: invalid configuration:\n%s\n", err)
			return 1
		}
		if *target, err = healthURL(cfg.HTTP.Addr, cfg.HTTP.TLS.Enabled()); err != nil {
			fmt.Fprintf(stderr, "healthcheck: http.addr: %v\n", err)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := getHealthy(ctx, *target); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s\n", *target)
	return 0
}

// healthURL is the /healthz URL of a server listening on addr (over
// HTTPS when it serves TLS): its own host, or 127.0.0.1 when it listens on
// every address (":5000", "0.0.0.0:5000", "[::]:5000").
func healthURL(addr string, tls bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + "/healthz", nil
}

// getHealthy GETs u directly (no proxy from the environment, no
// redirects) and wants a 200. An HTTPS server's certificate is not
// verified: it names the registry's public host, not the loopback address
// asked, and the check sends nothing secret and trusts nothing it reads
// but the status.
func getHealthy(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	c := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // see above
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}
