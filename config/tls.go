package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/slipway/slipway/internal/tlsreload"
)

// TLS is http.tls: HTTPS on http.addr when CertFile is set. The files are
// read at start (a missing or unparseable one is a configuration error) and
// again on SIGHUP or when they change on disk (see internal/tlsreload).
type TLS struct {
	// CertFile is the PEM certificate chain, leaf first; KeyFile its PEM
	// private key. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, optional, holds the PEM CA certificates that sign
	// client certificates: /api/ then requires a verified client
	// certificate (mTLS), while /v2/ and /auth/token still accept clients
	// without one (docker has none to give).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the server speaks TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

func (t TLS) problems() []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	switch {
	case t.CertFile == "" && t.KeyFile != "":
		add("http.tls.cert_file", "must be set when http.tls.key_file is (both or neither)")
	case t.CertFile != "" && t.KeyFile == "":
		add("http.tls.key_file", "must be set when http.tls.cert_file is (both or neither)")
	case t.CertFile != "":
		err := regularFile(t.CertFile)
		if err == nil {
			err = regularFile(t.KeyFile)
		}
		if err == nil {
			_, err = tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		}
		if err != nil {
			add("http.tls.cert_file", "cannot load the key pair with http.tls.key_file: %s", oneLine(err))
		}
	}
	if t.ClientCAFile == "" {
		return ps
	}
	if t.CertFile == "" {
		add("http.tls.client_ca_file", "needs http.tls.cert_file and key_file (client certificates only exist over TLS)")
	}
	err := regularFile(t.ClientCAFile)
	if err == nil {
		_, err = tlsreload.LoadCertPool(t.ClientCAFile)
	}
	if err != nil {
		add("http.tls.client_ca_file", "%s", oneLine(err))
	}
	return ps
}

// regularFile refuses what is not a file (a folder, a FIFO, /dev/zero),
// which reading could not finish or would make no sense of.
func regularFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%q is not a regular file", path)
	}
	return nil
}

// oneLine keeps an error on its message's one line (a path may hold a
// line break).
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", `\n`) }

// TrustedProxyPrefixes is http.trusted_proxies parsed (a single address is
// a one-address prefix); entries that do not parse are left out, which
// validation has already refused.
func (h HTTP) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range h.TrustedProxies {
		if p, ok := parsePrefix(s); ok {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

func trustedProxyProblems(list []string) []problem {
	var ps []problem
	for i, s := range list {
		if _, ok := parsePrefix(s); !ok {
			ps = append(ps, problem{fmt.Sprintf("http.trusted_proxies[%d]", i),
				fmt.Sprintf("must be a CIDR like \"10.0.0.0/8\" or an address, got %q", s)})
		}
	}
	return ps
}
