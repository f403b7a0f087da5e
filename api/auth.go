package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Role is what an API token may do.
type Role string

const (
	// RoleViewer reads: lists, shows, events, explain, whatif, logs.
	RoleViewer Role = "viewer"
	// RoleAdmin also changes: creates and deletes workloads, volumes and
	// floating IPs, fences, clears and powers on hosts, drains, settings.
	RoleAdmin Role = "admin"
)

// Allows reports whether a token of role r may act where need is required.
func (r Role) Allows(need Role) bool {
	switch need {
	case RoleViewer:
		return r == RoleViewer || r == RoleAdmin
	case RoleAdmin:
		return r == RoleAdmin
	}
	return false
}

// ParseRole reads "viewer" or "admin".
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RoleViewer, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role %q is unknown: use viewer or admin", s)
}

// TokenRecord is a stored API token, at /bulwark/v1/tokens/<id>. Only the
// SHA-256 of the secret is kept: a store dump gives no usable token (the
// secret is 256 random bits, so a plain hash is enough; no password
// stretching is needed).
type TokenRecord struct {
	Schema    int       `json:"schema"`
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt: zero means never.
	ExpiresAt time.Time `json:"expires_at,omitempty"`
}

// tokenPrefix starts every token, so that a leaked one is easy to grep for
// and to tell from other secrets.
const tokenPrefix = "bwk_"

// NewToken makes a token: the string to hand out once, and the record to
// store.
func NewToken(name string, role Role, now time.Time, ttl time.Duration) (string, TokenRecord, error) {
	if err := ValidateName("token", name); err != nil {
		return "", TokenRecord{}, err
	}
	if !RoleAdmin.Allows(role) {
		return "", TokenRecord{}, fmt.Errorf("role %q is unknown: use viewer or admin", role)
	}
	id := make([]byte, 6)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", TokenRecord{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", TokenRecord{}, err
	}
	rec := TokenRecord{Schema: SchemaVersion, ID: hex.EncodeToString(id), Name: name, Role: role, Hash: hashSecret(hex.EncodeToString(secret)), CreatedAt: now.UTC()}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl).UTC()
	}
	return tokenPrefix + rec.ID + "_" + hex.EncodeToString(secret), rec, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SplitToken returns a token's id and secret, or ok=false if it is not a
// Bulwark token.
func SplitToken(tok string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(tok), tokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || len(id) != 12 || len(secret) != 64 {
		return "", "", false
	}
	return id, secret, true
}

// Matches reports whether secret is this record's, in constant time.
func (t TokenRecord) Matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(t.Hash)) == 1
}

// Expired reports whether the token has expired at now.
func (t TokenRecord) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}
