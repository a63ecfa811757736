package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrReadOnly: a write was refused because the store was opened
// read-only (the storage of another program, which Slipway only reads:
// the stock registry's, during an import).
var ErrReadOnly = errors.New("storage: opened read-only")

// ReadOnly returns s with every write refused (Put, PutIfAbsent,
// PutIfMatch and Delete return ErrReadOnly without reaching s); reads,
// listings, Ping and s's read-only capabilities (Presigner, Locator) are
// s's own. It keeps a reader from changing what it must only read,
// whatever its code does; it never hands out s itself.
func ReadOnly(s Store) Store {
	ro := readOnly{s}
	p, presigns := s.(Presigner)
	l, locates := s.(Locator)
	switch {
	case presigns && locates:
		return struct {
			Store
			Presigner
			Locator
		}{ro, p, l}
	case presigns:
		return struct {
			Store
			Presigner
		}{ro, p}
	case locates:
		return struct {
			Store
			Locator
		}{ro, l}
	}
	return ro
}

type readOnly struct{ Store }

func refused(op, key string) error { return fmt.Errorf("%s %q: %w", op, key, ErrReadOnly) }

func (readOnly) Put(_ context.Context, key string, _ io.Reader, _ int64) (Info, error) {
	return Info{}, refused("put", key)
}

func (readOnly) PutIfAbsent(_ context.Context, key string, _ io.Reader, _ int64) (Info, error) {
	return Info{}, refused("put-if-absent", key)
}

func (readOnly) PutIfMatch(_ context.Context, key string, _ io.Reader, _ int64, _ string) (Info, error) {
	return Info{}, refused("put-if-match", key)
}

func (readOnly) Delete(_ context.Context, key string) error { return refused("delete", key) }
