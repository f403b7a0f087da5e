package ctl

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api/client"
)

// Credentials: where bulwarkctl finds its API token and the CA of an
// https:// API.
const (
	EnvToken     = "BULWARK_TOKEN"
	EnvTokenFile = "BULWARK_TOKEN_FILE"
	EnvCAFile    = "BULWARK_CA_FILE"
)

// credentialsHelp explains the lookup order, for --help texts and docs.
const credentialsHelp = `The API token comes from, first found: --token, $BULWARK_TOKEN, --token-file,
$BULWARK_TOKEN_FILE, ~/.config/bulwark/token, and the admin token a local
"bulwarkd dev" wrote ($TMPDIR/bulwark-dev-<uid>/admin.token). Create tokens on a
server host with "bulwarkd token create NAME --role viewer|admin".`

func credentialFlags(root bool) []cli.Flag {
	tok := &cli.StringFlag{Name: "token", Usage: "API `TOKEN` (prefer $" + EnvToken + " or a token file: flags show up in ps)"}
	file := &cli.StringFlag{Name: "token-file", Usage: "file holding the API token (default $" + EnvTokenFile + ", ~/.config/bulwark/token)"}
	ca := &cli.StringFlag{Name: "ca-file", Usage: "PEM CA bundle to trust for an https:// API (default $" + EnvCAFile + ")"}
	if root {
		tok.EnvVars = []string{EnvToken}
		file.EnvVars = []string{EnvTokenFile}
		ca.EnvVars = []string{EnvCAFile}
	}
	return []cli.Flag{tok, file, ca}
}

// applyCredentials gives the client its token and CA.
func applyCredentials(c *cli.Context, cl *client.Client) error {
	tok, err := findToken(lookupGlobal(c, "token"), lookupGlobal(c, "token-file"))
	if err != nil {
		return err
	}
	cl.SetToken(tok)
	if ca := strings.TrimSpace(lookupGlobal(c, "ca-file")); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca-file %s: no PEM certificates in it", ca)
		}
		cl.SetRootCAs(pool)
	}
	return nil
}

// findToken returns the token from the first place that has one; "" if
// none (the server then says what it needs).
func findToken(flagToken, flagFile string) (string, error) {
	if t := strings.TrimSpace(flagToken); t != "" {
		return t, nil
	}
	if flagFile != "" {
		return readTokenFile(flagFile, true)
	}
	var candidates []string
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".config", "bulwark", "token"))
	}
	candidates = append(candidates, filepath.Join(os.TempDir(), fmt.Sprintf("bulwark-dev-%d", os.Getuid()), "admin.token"))
	for _, p := range candidates {
		if t, err := readTokenFile(p, false); err != nil || t != "" {
			return t, err
		}
	}
	return "", nil
}

// readTokenFile reads a token file; a missing one is an error only when
// named explicitly. A token file others can read is refused.
func readTokenFile(path string, must bool) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) && !must {
			return "", nil
		}
		return "", fmt.Errorf("token file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s: mode %04o lets others read it; chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
