package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxPassword is bcrypt's limit: it ignores (x/crypto refuses) more bytes.
const maxPassword = 72

// passwd prints the bcrypt hash of the password on stdin, for
// auth.users[].password_hash:
//
//	printf '%s' "$PASSWORD" | slipway passwd
func passwd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := newFlags("passwd", "", stderr)
	cost := fl.Int("cost", bcrypt.DefaultCost, "bcrypt `cost` (10-16; each step doubles the work)")
	if code, ok := parseFlags(fl, args); !ok {
		return code
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "slipway passwd: unexpected argument %q (the password is read from stdin)\n", fl.Arg(0))
		return 2
	}
	if *cost < bcrypt.DefaultCost || *cost > 16 {
		fmt.Fprintf(stderr, "slipway passwd: --cost must be 10-16, got %d\n", *cost)
		return 2
	}
	pw, err := readPassword(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "slipway passwd: %s\n", err)
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintf(stderr, "slipway passwd: %s\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", hash)
	return 0
}

// readPassword reads one line: the password, without its line ending.
func readPassword(r io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, 4096))
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if rest, _ := br.ReadString(0); strings.TrimSpace(rest) != "" {
		return "", errors.New("stdin holds more than one line: give the password alone")
	}
	switch {
	case pw == "":
		return "", errors.New("no password on stdin (printf '%s' \"$PASSWORD\" | slipway passwd)")
	case len(pw) > maxPassword:
		return "", fmt.Errorf("the password is %d bytes; bcrypt uses at most %d", len(pw), maxPassword)
	}
	return pw, nil
}
