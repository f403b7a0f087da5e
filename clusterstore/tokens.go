package clusterstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// CreateToken stores a new API token and returns it; the token itself is
// shown once and never stored (only its hash is).
func CreateToken(ctx context.Context, s Store, name string, role api.Role, ttl time.Duration, now time.Time) (string, api.TokenRecord, error) {
	toks, err := ListTokens(ctx, s)
	if err != nil {
		return "", api.TokenRecord{}, err
	}
	for _, t := range toks {
		if t.Name == name {
			return "", api.TokenRecord{}, fmt.Errorf("a token named %q exists already (id %s); revoke it first or pick another name", name, t.ID)
		}
	}
	tok, rec, err := api.NewToken(name, role, now, ttl)
	if err != nil {
		return "", api.TokenRecord{}, err
	}
	key := TokenKey(rec.ID)
	ok, _, err := s.Txn(ctx, []Cond{Missing(key)}, []Op{Put(key, Encode(rec))})
	if err != nil {
		return "", api.TokenRecord{}, fmt.Errorf("store token: %w", err)
	}
	if !ok {
		return "", api.TokenRecord{}, errors.New("token id collision; try again")
	}
	return tok, rec, nil
}

// ListTokens returns every stored token record, by name.
func ListTokens(ctx context.Context, s Store) ([]api.TokenRecord, error) {
	kvs, _, err := s.List(ctx, TokensPrefix, 0)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]api.TokenRecord, 0, len(kvs))
	for _, kv := range kvs {
		var t api.TokenRecord
		if err := Decode(kv, &t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RevokeToken deletes a token by id or name.
func RevokeToken(ctx context.Context, s Store, idOrName string) (api.TokenRecord, error) {
	toks, err := ListTokens(ctx, s)
	if err != nil {
		return api.TokenRecord{}, err
	}
	for _, t := range toks {
		if t.ID == idOrName || t.Name == idOrName {
			if _, _, err := s.Txn(ctx, nil, []Op{Delete(TokenKey(t.ID))}); err != nil {
				return api.TokenRecord{}, fmt.Errorf("revoke token: %w", err)
			}
			return t, nil
		}
	}
	return api.TokenRecord{}, fmt.Errorf("no token with id or name %q", idOrName)
}

// LookupToken finds the record of a presented token. It returns an error
// that is safe to show to the caller (it never contains the token).
func LookupToken(ctx context.Context, s Store, tok string, now time.Time) (api.TokenRecord, error) {
	id, secret, ok := api.SplitToken(tok)
	if !ok {
		return api.TokenRecord{}, errors.New("that is not a Bulwark API token (they start with bwk_)")
	}
	kv, found, _, err := s.Get(ctx, TokenKey(id))
	if err != nil {
		return api.TokenRecord{}, fmt.Errorf("cannot check the token now: %w", err)
	}
	var rec api.TokenRecord
	if found {
		if err := Decode(kv, &rec); err != nil {
			return api.TokenRecord{}, err
		}
	}
	if !found || !rec.Matches(secret) {
		return api.TokenRecord{}, fmt.Errorf("unknown or revoked token (id %s)", id)
	}
	if rec.Expired(now) {
		return api.TokenRecord{}, fmt.Errorf("token %s (%s) expired at %s", rec.Name, id, rec.ExpiresAt.Format(time.RFC3339))
	}
	return rec, nil
}
