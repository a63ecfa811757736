// Command haproxycfg prints the HAProxy configuration the cluster tests
// use (harness.HAProxyConfig), so that bench/run-haproxy.sh measures the
// very configuration the tests check rather than a copy of it.
//
//	go run ./integration/internal/harness/haproxycfg -bind 127.0.0.1:5410 -sock /tmp/s.sock 127.0.0.1:5401 127.0.0.1:5402
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/slipway/slipway/integration/internal/harness"
)

func main() {
	bind := flag.String("bind", "", "host:port of the frontend (required)")
	sock := flag.String("sock", "", "path of the stats socket (required)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: haproxycfg -bind HOST:PORT -sock PATH SERVER...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *bind == "" || *sock == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	fmt.Print(harness.HAProxyConfig(*bind, *sock, flag.Args()))
}
