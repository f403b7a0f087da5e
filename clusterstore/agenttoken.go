package clusterstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// NewAgentToken makes a random bearer token for an agent's HTTP API.
func NewAgentToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("agent token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ErrNoAgentToken: the host's agent never published a token (an agent from
// before tokens, or one that serves no HTTP API).
var ErrNoAgentToken = errors.New("the agent published no API token")

// AgentToken reads the bearer token a host's agent accepts. Anyone who can
// read the store can run workloads anyway; the token keeps the agent's
// port from serving whoever reaches it on the network.
func AgentToken(ctx context.Context, s Store, host string) (string, error) {
	kv, ok, _, err := s.Get(ctx, AgentTokenKey(host))
	if err != nil {
		return "", fmt.Errorf("read agent token of %s: %w", host, err)
	}
	if !ok || len(kv.Value) == 0 {
		return "", fmt.Errorf("%s: %w", host, ErrNoAgentToken)
	}
	return string(kv.Value), nil
}
