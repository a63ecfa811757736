package s3

import (
	"context"

	"github.com/slipway/slipway/storage"
)

var _ storage.Locator = (*Store)(nil)

// Locate says where key's object is: this store's endpoint (host[:port],
// as requests go to it), its bucket, and the bucket-absolute object key
// (Root included). It reads nothing: the object need not exist.
func (s *Store) Locate(_ context.Context, key string) (storage.Location, error) {
	obj, err := s.object("locate", key)
	if err != nil {
		return storage.Location{}, err
	}
	return storage.Location{Endpoint: s.host(), Bucket: s.bucket, Object: obj}, nil
}

// host is the endpoint requests go to, as Locate reports it.
func (s *Store) host() string { return s.client.EndpointURL().Host }
