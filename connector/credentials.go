package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Credentials is an access key pair, resolved on a worker from a name in the
// Spec. It never enters a workflow input or history. String and GoString
// hide the secret and the token; no error of this package contains them.
type Credentials struct {
	// Name is the name the credentials were resolved by; errors name it.
	// Set by ResolveCredentials; never read from or written to JSON.
	Name            string `json:"-"`
	AccessKeyID     string `json:"accessKeyId"`
	AccessKeySecret string `json:"accessKeySecret"`
	// SecurityToken is set for STS credentials. Optional.
	SecurityToken string `json:"securityToken,omitempty"`
	// Allowed restricts where the credentials may be used; see Permit.
	// Optional. Default: anywhere.
	Allowed *CredentialScope `json:"allowed,omitempty"`
}

// CredentialScope lists where credentials may be used. Each list restricts
// one kind of value: a nil list (absent or null) permits every value of its
// kind; a list given but empty ([]) permits none.
type CredentialScope struct {
	// Endpoints are the OSS and MaxCompute endpoints (API and tunnel) the
	// credentials may be sent to, as http:// or https:// URLs. They compare
	// by scheme, host (in any case) and port; a URL without a port means the
	// scheme's default, and paths (MaxCompute's /api) and trailing slashes
	// are ignored on both sides. Optional. Default: any endpoint.
	Endpoints []string `json:"endpoints"`
	// Buckets are the OSS buckets the credentials may write: exact names, or
	// a prefix followed by '*' ("logs-*"; "*" alone is any bucket).
	// Optional. Default: any bucket.
	Buckets []string `json:"buckets"`
	// Projects are the MaxCompute projects, matched like Buckets.
	// Optional. Default: any project.
	Projects []string `json:"projects"`
	// Brokers are the Kafka seed brokers SASL credentials may be sent to, as
	// host:port; every broker of kafka.brokers must be listed (host names in
	// any case). Optional. Default: any broker.
	Brokers []string `json:"brokers"`
}

// String hides the secret.
func (c Credentials) String() string { return "Credentials{" + c.AccessKeyID + ", ****}" }

// GoString hides the secret from %#v too.
func (c Credentials) GoString() string { return c.String() }

// ResolveCredentials finds the credentials named name, first in the
// environment, then in a file:
//
//	DUMPFLOW_CRED_<NAME>_ACCESS_KEY_ID, DUMPFLOW_CRED_<NAME>_ACCESS_KEY_SECRET
//	  (and optionally _SECURITY_TOKEN), where <NAME> is name upper-cased with
//	  every character other than a letter or digit replaced by '_';
//	  optionally restricted by DUMPFLOW_CRED_<NAME>_ALLOWED_ENDPOINTS,
//	  _ALLOWED_BUCKETS, _ALLOWED_PROJECTS and _ALLOWED_BROKERS, each a
//	  comma-separated list (set but empty: nothing of that kind is allowed);
//	$DUMPFLOW_CREDENTIALS_DIR/<name>.json (default dir /etc/dumpflow/credentials)
//	  holding {"accessKeyId": "...", "accessKeySecret": "...", "allowed":
//	  {"endpoints": [...], "buckets": [...], "projects": [...], "brokers": [...]}}
//	  where "allowed" and each of its lists are optional.
//
// The allow-lists come from the same place as the key: ALLOWED_* variables
// set next to a key read from a file are an error, not silently ignored.
// Inside "allowed" an unknown or mis-cased key is an error (a misspelt list
// would otherwise allow everything), as is any other top-level key starting
// with "allow"; other unknown top-level keys are ignored, as they always were.
// Malformed entries (an endpoint that is not an http(s) URL, a broker without
// a port, a '*' not at the end) are errors.
func ResolveCredentials(name string) (Credentials, error) {
	env := CredentialsEnvPrefix(name)
	scope, envScope, err := envCredentialScope(name, env)
	if err != nil {
		return Credentials{}, err
	}
	if id := os.Getenv(env + "ACCESS_KEY_ID"); id != "" {
		c := Credentials{Name: name, AccessKeyID: id, AccessKeySecret: os.Getenv(env + "ACCESS_KEY_SECRET"), SecurityToken: os.Getenv(env + "SECURITY_TOKEN"), Allowed: scope}
		if c.AccessKeySecret == "" {
			return Credentials{}, fmt.Errorf("credentials %q: %sACCESS_KEY_ID is set but %sACCESS_KEY_SECRET is empty", name, env, env)
		}
		if kind, err := c.Allowed.check(); err != nil {
			return Credentials{}, fmt.Errorf("credentials %q: %sALLOWED_%s: %w", name, env, strings.ToUpper(kind), err)
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
	if len(envScope) > 0 {
		return Credentials{}, fmt.Errorf("credentials %q: %s is set but the key comes from %s: put the allow-lists in the file's \"allowed\"", name, strings.Join(envScope, ", "), path)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return Credentials{}, fmt.Errorf("credentials %q: %s: %w", name, path, err)
	}
	c.Name = name
	if err := checkCredentialFields(data); err != nil {
		return Credentials{}, fmt.Errorf("credentials %q: %s: %w", name, path, err)
	}
	if c.AccessKeyID == "" || c.AccessKeySecret == "" {
		return Credentials{}, fmt.Errorf("credentials %q: %s must set accessKeyId and accessKeySecret", name, path)
	}
	if kind, err := c.Allowed.check(); err != nil {
		return Credentials{}, fmt.Errorf("credentials %q: %s: allowed.%s: %w", name, path, kind, err)
	}
	return c, nil
}

// envScopeKinds are the environment suffixes of the allow-lists.
var envScopeKinds = []string{"ENDPOINTS", "BUCKETS", "PROJECTS", "BROKERS"}

// envCredentialScope reads the ALLOWED_* variables of env. It returns the
// scope (nil when none is set), the names of the variables that are set, and
// an error for a variable that looks like a misspelt allow-list.
func envCredentialScope(name, env string) (*CredentialScope, []string, error) {
	var set []string
	lists := make([][]string, len(envScopeKinds))
	for i, k := range envScopeKinds {
		v, ok := os.LookupEnv(env + "ALLOWED_" + k)
		if !ok {
			continue
		}
		set = append(set, env+"ALLOWED_"+k)
		lists[i] = []string{}
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				lists[i] = append(lists[i], e)
			}
		}
	}
	var odd []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(k, env+"ALLOW")
		// ALLOWED_BUCKET, ALLOW_BUCKETS; not another credentials' variables
		// such as those of "<name>-allowed" (…_ALLOWED_ACCESS_KEY_ID).
		if !ok || strings.Count(rest, "_") > 1 {
			continue
		}
		known := false
		for _, s := range set {
			known = known || s == k
		}
		if !known {
			odd = append(odd, k)
		}
	}
	if len(odd) > 0 {
		sort.Strings(odd)
		return nil, nil, fmt.Errorf("credentials %q: unknown variable %s; the allow-lists are %sALLOWED_ENDPOINTS, _BUCKETS, _PROJECTS and _BROKERS", name, strings.Join(odd, ", "), env)
	}
	if len(set) == 0 {
		return nil, nil, nil
	}
	return &CredentialScope{Endpoints: lists[0], Buckets: lists[1], Projects: lists[2], Brokers: lists[3]}, set, nil
}

// checkCredentialFields rejects unknown keys in a credentials file where
// they could loosen a restriction: under "allowed", and top-level keys that
// look like a misspelt "allowed".
func checkCredentialFields(data []byte) error {
	vs, err := CheckFields(data, (*Credentials)(nil))
	if err != nil {
		return err
	}
	var bad []string
	for _, v := range vs {
		top := v.Field
		if i := strings.IndexAny(top, ".["); i >= 0 {
			top = top[:i]
		}
		switch {
		case strings.EqualFold(top, "allowed") && v.Field == top:
			// "Allowed": decoded all the same; tolerated like other keys.
		case strings.HasPrefix(strings.ToLower(top), "allow"):
			bad = append(bad, v.Field+": "+v.Rule)
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// check reports the first malformed entry and the kind of its list
// (endpoints, buckets, projects or brokers); a nil scope is fine.
func (s *CredentialScope) check() (kind string, err error) {
	if s == nil {
		return "", nil
	}
	for _, e := range s.Endpoints {
		if _, err := endpointKey(e); err != nil {
			return "endpoints", fmt.Errorf("%q %w", redactURL(e), err)
		}
	}
	for _, l := range []struct {
		kind string
		list []string
	}{{"buckets", s.Buckets}, {"projects", s.Projects}} {
		for _, p := range l.list {
			if p == "" || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
				return l.kind, fmt.Errorf("%q must be a name, or a prefix followed by '*'", p)
			}
		}
	}
	for _, b := range s.Brokers {
		if h, p, err := net.SplitHostPort(b); err != nil || h == "" || p == "" {
			return "brokers", fmt.Errorf("%q must be host:port", b)
		}
	}
	return "", nil
}

// Use is one place a spec uses credentials, as a worker is about to use
// them. Empty values are not checked.
type Use struct {
	// Field is the spec object the values come from, e.g. "sink.oss",
	// "sink.maxcompute" or "kafka"; a refusal names Field plus the value's
	// key, e.g. "sink.oss.bucket" or "kafka.brokers[1]".
	Field string
	// Endpoint is an OSS or MaxCompute endpoint URL (key "endpoint").
	Endpoint string
	// TunnelEndpoint is a MaxCompute tunnel endpoint URL, checked against
	// the same endpoints (key "tunnelEndpoint").
	TunnelEndpoint string
	// Bucket is an OSS bucket (key "bucket").
	Bucket string
	// Project is a MaxCompute project (key "project").
	Project string
	// Brokers are Kafka seed brokers, host:port (key "brokers[i]").
	Brokers []string
}

// CredentialUseError is a use of credentials that their allow-list refuses.
// It is a permanent error: the spec or the credentials must change. Its
// message names the credentials, the field, the value and the allowed list,
// never the secret.
type CredentialUseError struct {
	// Credentials is the credentials' name.
	Credentials string
	// Field is the spec field holding the refused value, e.g. "sink.oss.bucket".
	Field string
	// Value is the refused value (user info in a URL is masked).
	Value string
	// Kind is the list that refused it: endpoints, buckets, projects or brokers.
	Kind string
	// Allowed is that list; empty means nothing of the kind is allowed.
	Allowed []string
}

func (e *CredentialUseError) Error() string {
	allowed := "none"
	if len(e.Allowed) > 0 {
		allowed = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("credentials %q may not be used for %s %q (allowed %s: %s)", e.Credentials, e.Field, e.Value, e.Kind, allowed)
}

// Permit checks use against c.Allowed and returns nil, or a
// *CredentialUseError for each refused value (joined with errors.Join when
// there are several; errors.As finds the first).
func (c Credentials) Permit(use Use) error {
	a := c.Allowed
	if a == nil {
		return nil
	}
	var errs []error
	refuse := func(key, value, kind string, allowed []string) {
		field := key
		if use.Field != "" {
			field = use.Field + "." + key
		}
		shown := make([]string, len(allowed))
		for i, x := range allowed {
			shown[i] = redactURL(x)
		}
		errs = append(errs, &CredentialUseError{Credentials: c.Name, Field: field, Value: redactURL(value), Kind: kind, Allowed: shown})
	}
	for _, ep := range []struct{ key, value string }{{"endpoint", use.Endpoint}, {"tunnelEndpoint", use.TunnelEndpoint}} {
		if ep.value != "" && a.Endpoints != nil && !endpointAllowed(a.Endpoints, ep.value) {
			refuse(ep.key, ep.value, "endpoints", a.Endpoints)
		}
	}
	if use.Bucket != "" && a.Buckets != nil && !nameAllowed(a.Buckets, use.Bucket) {
		refuse("bucket", use.Bucket, "buckets", a.Buckets)
	}
	if use.Project != "" && a.Projects != nil && !nameAllowed(a.Projects, use.Project) {
		refuse("project", use.Project, "projects", a.Projects)
	}
	if a.Brokers != nil {
		for i, b := range use.Brokers {
			if !brokerAllowed(a.Brokers, b) {
				refuse(fmt.Sprintf("brokers[%d]", i), b, "brokers", a.Brokers)
			}
		}
	}
	return errors.Join(errs...)
}

// CheckCredentialUse checks every place spec uses credentials against their
// allow-lists: sink.oss (endpoint and bucket), sink.maxcompute (endpoint,
// tunnelEndpoint when set, and project) and kafka.sasl (every broker of
// kafka.brokers). resolve finds credentials by name; nil means
// ResolveCredentials. It returns nil, or every resolve error and
// *CredentialUseError joined with errors.Join. Workers call it before they
// use credentials.
func CheckCredentialUse(spec *Spec, resolve func(name string) (Credentials, error)) error {
	if resolve == nil {
		resolve = ResolveCredentials
	}
	var errs []error
	check := func(name string, u Use) {
		c, err := resolve(name)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if c.Name == "" {
			c.Name = name
		}
		if err := c.Permit(u); err != nil {
			errs = append(errs, err)
		}
	}
	if sa := spec.Kafka.SASL; sa != nil {
		check(sa.Credentials, Use{Field: "kafka", Brokers: spec.Kafka.Brokers})
	}
	if o := spec.Sink.OSS; o != nil {
		check(o.Credentials, Use{Field: "sink.oss", Endpoint: o.Endpoint, Bucket: o.Bucket})
	}
	if m := spec.Sink.MaxCompute; m != nil {
		check(m.Credentials, Use{Field: "sink.maxcompute", Endpoint: m.Endpoint, TunnelEndpoint: m.TunnelEndpoint, Project: m.Project})
	}
	return errors.Join(errs...)
}

// endpointKey reduces an endpoint URL to scheme://host:port, the part that
// says where credentials are sent.
func endpointKey(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", errors.New("must be an http:// or https:// URL")
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme != "http" && scheme != "https":
		return "", errors.New("must be an http:// or https:// URL")
	case u.Hostname() == "":
		return "", errors.New("must have a host")
	case port == "" && scheme == "http":
		port = "80"
	case port == "":
		port = "443"
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

func endpointAllowed(allowed []string, endpoint string) bool {
	k, err := endpointKey(endpoint)
	if err != nil {
		return false
	}
	for _, a := range allowed {
		if ak, err := endpointKey(a); err == nil && ak == k {
			return true
		}
	}
	return false
}

// nameAllowed matches a bucket or project: exactly, or by a pattern's prefix
// when it ends with '*'.
func nameAllowed(allowed []string, name string) bool {
	for _, p := range allowed {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

func brokerAllowed(allowed []string, broker string) bool {
	h, p, err := net.SplitHostPort(broker)
	if err != nil {
		return false
	}
	for _, a := range allowed {
		if ah, ap, err := net.SplitHostPort(a); err == nil && ap == p && strings.EqualFold(ah, h) {
			return true
		}
	}
	return false
}

// redactURL masks the user info of a URL (user:password@); other text is
// returned as it is.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("xxxxx")
		return u.String()
	}
	return s
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
