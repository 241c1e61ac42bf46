package connector

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Credentials is an access key pair, resolved on a worker from a name in the
// Spec. It never enters a workflow input or history.
type Credentials struct {
	AccessKeyID     string `json:"accessKeyId"`
	AccessKeySecret string `json:"accessKeySecret"`
	// SecurityToken is set for STS credentials. Optional.
	SecurityToken string `json:"securityToken,omitempty"`
}

// String hides the secret.
func (c Credentials) String() string { return "Credentials{" + c.AccessKeyID + ", ****}" }

// ResolveCredentials finds the credentials named name, first in the
// environment, then in a file:
//
//	DUMPFLOW_CRED_<NAME>_ACCESS_KEY_ID, DUMPFLOW_CRED_<NAME>_ACCESS_KEY_SECRET
//	  (and optionally _SECURITY_TOKEN), where <NAME> is name upper-cased with
//	  every character other than a letter or digit replaced by '_';
//	$DUMPFLOW_CREDENTIALS_DIR/<name>.json (default dir /etc/dumpflow/credentials)
//	  holding {"accessKeyId": "...", "accessKeySecret": "..."}.
func ResolveCredentials(name string) (Credentials, error) {
	env := CredentialsEnvPrefix(name)
	if id := os.Getenv(env + "ACCESS_KEY_ID"); id != "" {
		c := Credentials{AccessKeyID: id, AccessKeySecret: os.Getenv(env + "ACCESS_KEY_SECRET"), SecurityToken: os.Getenv(env + "SECURITY_TOKEN")}
		if c.AccessKeySecret == "" {
			return Credentials{}, fmt.Errorf("credentials %q: %sACCESS_KEY_ID is set but %sACCESS_KEY_SECRET is empty", name, env, env)
		}
		return c, nil
	}
	dir := os.Getenv("DUMPFLOW_CREDENTIALS_DIR")
	if dir == "" {
		dir = "/etc/dumpflow/credentials"
	}
	path := filepath.Join(dir, name+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials %q not found: set %sACCESS_KEY_ID and %sACCESS_KEY_SECRET, or write %s", name, env, env, path)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return Credentials{}, fmt.Errorf("credentials %q: %s: %w", name, path, err)
	}
	if c.AccessKeyID == "" || c.AccessKeySecret == "" {
		return Credentials{}, fmt.Errorf("credentials %q: %s must set accessKeyId and accessKeySecret", name, path)
	}
	return c, nil
}

// CredentialsEnvPrefix is the environment variable prefix for credentials
// name, e.g. "DUMPFLOW_CRED_LOCAL_".
func CredentialsEnvPrefix(name string) string {
	up := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, name)
	return "DUMPFLOW_CRED_" + up + "_"
}
