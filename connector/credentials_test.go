package connector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const testSecret = "s3cr3t-never-shown"

func scoped(a *CredentialScope) Credentials {
	return Credentials{Name: "prod", AccessKeyID: "LTAIid", AccessKeySecret: testSecret, SecurityToken: "tok-never-shown", Allowed: a}
}

// TestPermit covers each kind of allow-list: allowed and refused values,
// endpoint normalisation, globs, absent and empty lists; every refusal is a
// *CredentialUseError naming credentials, field, value and list, never the
// secret.
func TestPermit(t *testing.T) {
	hz := []string{"https://oss-cn-hangzhou.aliyuncs.com", "http://127.0.0.1:9300", "http://service.cn-hangzhou.maxcompute.aliyun.com/api"}
	tests := []struct {
		name    string
		allowed *CredentialScope
		use     Use
		field   string // refused field, "" when permitted
		inErr   string
	}{
		{"no scope", nil, Use{Field: "sink.oss", Endpoint: "https://evil.example.com", Bucket: "any"}, "", ""},
		{"absent list is unrestricted", &CredentialScope{Buckets: []string{"dumpflow"}}, Use{Field: "sink.oss", Endpoint: "https://evil.example.com", Bucket: "dumpflow"}, "", ""},
		{"endpoint exact", &CredentialScope{Endpoints: hz}, Use{Field: "sink.oss", Endpoint: "https://oss-cn-hangzhou.aliyuncs.com"}, "", ""},
		{"endpoint default port", &CredentialScope{Endpoints: hz}, Use{Field: "sink.oss", Endpoint: "https://oss-cn-hangzhou.aliyuncs.com:443/"}, "", ""},
		{"endpoint host case and path", &CredentialScope{Endpoints: hz}, Use{Field: "sink.oss", Endpoint: "https://OSS-cn-hangzhou.aliyuncs.com/some/path/"}, "", ""},
		{"endpoint /api in spec only", &CredentialScope{Endpoints: []string{"http://127.0.0.1:9400"}}, Use{Field: "sink.maxcompute", Endpoint: "http://127.0.0.1:9400/api"}, "", ""},
		{"endpoint /api in list only", &CredentialScope{Endpoints: hz}, Use{Field: "sink.maxcompute", Endpoint: "http://service.cn-hangzhou.maxcompute.aliyun.com:80"}, "", ""},
		{"endpoint other host", &CredentialScope{Endpoints: hz}, Use{Field: "sink.oss", Endpoint: "https://oss-cn-beijing.aliyuncs.com"}, "sink.oss.endpoint", `"https://oss-cn-beijing.aliyuncs.com"`},
		{"endpoint other port", &CredentialScope{Endpoints: hz}, Use{Field: "sink.oss", Endpoint: "http://127.0.0.1:9301"}, "sink.oss.endpoint", "allowed endpoints: https://oss-cn-hangzhou.aliyuncs.com, http://127.0.0.1:9300"},
		{"endpoint other scheme", &CredentialScope{Endpoints: hz}, Use{Field: "sink.oss", Endpoint: "http://oss-cn-hangzhou.aliyuncs.com"}, "sink.oss.endpoint", "may not be used"},
		{"endpoint user info masked", &CredentialScope{Endpoints: hz}, Use{Field: "sink.oss", Endpoint: "https://u:" + testSecret + "@x.example.com"}, "sink.oss.endpoint", "xxxxx@x.example.com"},
		{"tunnel endpoint", &CredentialScope{Endpoints: []string{"http://127.0.0.1:9400/api"}}, Use{Field: "sink.maxcompute", Endpoint: "http://127.0.0.1:9400/api", TunnelEndpoint: "http://127.0.0.1:9500"}, "sink.maxcompute.tunnelEndpoint", `"http://127.0.0.1:9500"`},
		{"bucket exact", &CredentialScope{Buckets: []string{"dumpflow", "logs-*"}}, Use{Field: "sink.oss", Bucket: "dumpflow"}, "", ""},
		{"bucket glob", &CredentialScope{Buckets: []string{"dumpflow", "logs-*"}}, Use{Field: "sink.oss", Bucket: "logs-app"}, "", ""},
		{"bucket glob needs prefix", &CredentialScope{Buckets: []string{"dumpflow", "logs-*"}}, Use{Field: "sink.oss", Bucket: "logs"}, "sink.oss.bucket", "allowed buckets: dumpflow, logs-*"},
		{"bucket refused", &CredentialScope{Buckets: []string{"dumpflow"}}, Use{Field: "sink.oss", Bucket: "dumpflow2"}, "sink.oss.bucket", `credentials "prod" may not be used for sink.oss.bucket "dumpflow2"`},
		{"bucket star", &CredentialScope{Buckets: []string{"*"}}, Use{Field: "sink.oss", Bucket: "anything"}, "", ""},
		{"empty list allows none", &CredentialScope{Buckets: []string{}}, Use{Field: "sink.oss", Bucket: "dumpflow"}, "sink.oss.bucket", "allowed buckets: none"},
		{"project exact", &CredentialScope{Projects: []string{"dumpflow"}}, Use{Field: "sink.maxcompute", Project: "dumpflow"}, "", ""},
		{"project glob", &CredentialScope{Projects: []string{"dw_*"}}, Use{Field: "sink.maxcompute", Project: "dw_sales"}, "", ""},
		{"project refused", &CredentialScope{Projects: []string{"dumpflow"}}, Use{Field: "sink.maxcompute", Project: "other"}, "sink.maxcompute.project", "allowed projects: dumpflow"},
		{"brokers all listed", &CredentialScope{Brokers: []string{"b1:9092", "b2:9092"}}, Use{Field: "kafka", Brokers: []string{"B1:9092", "b2:9092"}}, "", ""},
		{"broker not listed", &CredentialScope{Brokers: []string{"b1:9092"}}, Use{Field: "kafka", Brokers: []string{"b1:9092", "b2:9092"}}, "kafka.brokers[1]", `"b2:9092" (allowed brokers: b1:9092)`},
		{"broker other port", &CredentialScope{Brokers: []string{"b1:9092"}}, Use{Field: "kafka", Brokers: []string{"b1:9093"}}, "kafka.brokers[0]", "b1:9093"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := scoped(tt.allowed).Permit(tt.use)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			var ue *CredentialUseError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tt.field, ue.Field)
			require.Equal(t, "prod", ue.Credentials)
			require.ErrorContains(t, err, tt.inErr)
			requireNoSecret(t, err.Error())
		})
	}
}

func TestPermitReportsEveryRefusal(t *testing.T) {
	c := scoped(&CredentialScope{Endpoints: []string{"https://a.example.com"}, Buckets: []string{"a"}})
	err := c.Permit(Use{Field: "sink.oss", Endpoint: "https://b.example.com", Bucket: "b"})
	require.ErrorContains(t, err, "sink.oss.endpoint")
	require.ErrorContains(t, err, "sink.oss.bucket")
}

func requireNoSecret(t *testing.T, s string) {
	t.Helper()
	require.NotContains(t, s, testSecret)
	require.NotContains(t, s, "tok-never-shown")
}

func TestCredentialsHideSecret(t *testing.T) {
	c := scoped(&CredentialScope{Buckets: []string{"a"}})
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		requireNoSecret(t, fmt.Sprintf(f, c))
		requireNoSecret(t, fmt.Sprintf(f, &c))
	}
}

// TestResolveCredentialsScope reads allow-lists from the environment and from
// a file, and rejects lists that are misspelt, malformed, or set where they
// would not apply; no error carries the secret.
func TestResolveCredentialsScope(t *testing.T) {
	writeFile := func(t *testing.T, name, body string) {
		t.Helper()
		dir := t.TempDir()
		t.Setenv("DUMPFLOW_CREDENTIALS_DIR", dir)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o600))
	}
	key := `"accessKeyId": "id", "accessKeySecret": "` + testSecret + `"`
	tests := []struct {
		name  string
		env   map[string]string
		file  string // contents of prod.json, "" for none
		want  *CredentialScope
		inErr string
	}{
		{"env without lists", map[string]string{"ACCESS_KEY_ID": "id", "ACCESS_KEY_SECRET": testSecret}, "", nil, ""},
		{"env lists", map[string]string{"ACCESS_KEY_ID": "id", "ACCESS_KEY_SECRET": testSecret,
			"ALLOWED_ENDPOINTS": "https://oss-cn-hangzhou.aliyuncs.com, http://127.0.0.1:9300", "ALLOWED_BUCKETS": "dumpflow,logs-*,",
			"ALLOWED_BROKERS": ""}, "",
			&CredentialScope{Endpoints: []string{"https://oss-cn-hangzhou.aliyuncs.com", "http://127.0.0.1:9300"}, Buckets: []string{"dumpflow", "logs-*"}, Brokers: []string{}}, ""},
		{"env misspelt list", map[string]string{"ACCESS_KEY_ID": "id", "ACCESS_KEY_SECRET": testSecret, "ALLOWED_BUCKET": "dumpflow"}, "", nil,
			"unknown variable DUMPFLOW_CRED_PROD_ALLOWED_BUCKET"},
		{"env bad endpoint", map[string]string{"ACCESS_KEY_ID": "id", "ACCESS_KEY_SECRET": testSecret, "ALLOWED_ENDPOINTS": "oss-cn-hangzhou.aliyuncs.com"}, "", nil,
			`DUMPFLOW_CRED_PROD_ALLOWED_ENDPOINTS: "oss-cn-hangzhou.aliyuncs.com" must be an http:// or https:// URL`},
		{"env bad broker", map[string]string{"ACCESS_KEY_ID": "id", "ACCESS_KEY_SECRET": testSecret, "ALLOWED_BROKERS": "b1"}, "", nil,
			`ALLOWED_BROKERS: "b1" must be host:port`},
		{"env glob not at end", map[string]string{"ACCESS_KEY_ID": "id", "ACCESS_KEY_SECRET": testSecret, "ALLOWED_PROJECTS": "a*b"}, "", nil,
			`ALLOWED_PROJECTS: "a*b" must be a name, or a prefix followed by '*'`},
		{"env lists with file key", map[string]string{"ALLOWED_BUCKETS": "dumpflow"}, "{" + key + "}", nil,
			"DUMPFLOW_CRED_PROD_ALLOWED_BUCKETS is set but the key comes from"},
		{"file without lists", nil, "{" + key + `, "Expiration": "2030-01-01"}`, nil, ""},
		{"file lists", nil, "{" + key + `, "allowed": {"endpoints": ["http://127.0.0.1:9300"], "buckets": ["dumpflow"], "projects": ["dumpflow"], "brokers": ["b1:9092"]}}`,
			&CredentialScope{Endpoints: []string{"http://127.0.0.1:9300"}, Buckets: []string{"dumpflow"}, Projects: []string{"dumpflow"}, Brokers: []string{"b1:9092"}}, ""},
		{"file misspelt list", nil, "{" + key + `, "allowed": {"bucket": ["dumpflow"]}}`, nil, `allowed.bucket: unknown field; did you mean "buckets"?`},
		{"file mis-cased list", nil, "{" + key + `, "allowed": {"Buckets": ["dumpflow"]}}`, nil, `allowed.Buckets: unknown field; did you mean "buckets"?`},
		{"file misspelt allowed", nil, "{" + key + `, "allow": {"buckets": ["dumpflow"]}}`, nil, `allow: unknown field; did you mean "allowed"?`},
		{"file mis-cased allowed applies", nil, "{" + key + `, "Allowed": {"buckets": ["dumpflow"]}}`, &CredentialScope{Buckets: []string{"dumpflow"}}, ""},
		{"file mis-cased allowed, misspelt list", nil, "{" + key + `, "Allowed": {"bucket": ["dumpflow"]}}`, nil, `Allowed.bucket: unknown field`},
		{"file null list", nil, "{" + key + `, "allowed": {"buckets": null}}`, &CredentialScope{}, ""},
		{"file bad glob", nil, "{" + key + `, "allowed": {"buckets": ["*-logs"]}}`, nil, `allowed.buckets: "*-logs" must be a name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DUMPFLOW_CREDENTIALS_DIR", t.TempDir())
			for k, v := range tt.env {
				t.Setenv("DUMPFLOW_CRED_PROD_"+k, v)
			}
			if tt.file != "" {
				writeFile(t, "prod", tt.file)
			}
			c, err := ResolveCredentials("prod")
			if tt.inErr != "" {
				require.ErrorContains(t, err, tt.inErr)
				requireNoSecret(t, err.Error())
				return
			}
			require.NoError(t, err)
			require.Equal(t, "prod", c.Name)
			require.Equal(t, testSecret, c.AccessKeySecret)
			require.Equal(t, tt.want, c.Allowed)
		})
	}
}

// TestCheckCredentialUse checks every place a spec uses credentials, through
// ResolveCredentials and the environment.
func TestCheckCredentialUse(t *testing.T) {
	t.Setenv("DUMPFLOW_CREDENTIALS_DIR", t.TempDir())
	t.Setenv("DUMPFLOW_CRED_LOCAL_ACCESS_KEY_ID", "id")
	t.Setenv("DUMPFLOW_CRED_LOCAL_ACCESS_KEY_SECRET", testSecret)
	t.Setenv("DUMPFLOW_CRED_LOCAL_ALLOWED_ENDPOINTS", "http://127.0.0.1:9300,http://127.0.0.1:9400")
	t.Setenv("DUMPFLOW_CRED_LOCAL_ALLOWED_BUCKETS", "dumpflow")
	t.Setenv("DUMPFLOW_CRED_LOCAL_ALLOWED_PROJECTS", "dumpflow")
	t.Setenv("DUMPFLOW_CRED_KAFKA_ACCESS_KEY_ID", "user")
	t.Setenv("DUMPFLOW_CRED_KAFKA_ACCESS_KEY_SECRET", testSecret)
	t.Setenv("DUMPFLOW_CRED_KAFKA_ALLOWED_BROKERS", "127.0.0.1:9092")

	tests := []struct {
		name   string
		spec   func() *Spec
		fields []string // refused fields
	}{
		{"oss allowed", func() *Spec { return validSpec(t) }, nil},
		{"oss bucket", func() *Spec { s := validSpec(t); s.Sink.OSS.Bucket = "other"; return s }, []string{"sink.oss.bucket"}},
		{"oss endpoint", func() *Spec { s := validSpec(t); s.Sink.OSS.Endpoint = "http://10.0.0.1:9300"; return s }, []string{"sink.oss.endpoint"}},
		{"mc allowed", func() *Spec { s := validMC(); s.Sink.MaxCompute.TunnelEndpoint = "http://127.0.0.1:9400"; return s }, nil},
		{"mc tunnel and project", func() *Spec {
			s := validMC()
			s.Sink.MaxCompute.TunnelEndpoint = "http://127.0.0.1:9500"
			s.Sink.MaxCompute.Project = "other"
			return s
		}, []string{"sink.maxcompute.tunnelEndpoint", "sink.maxcompute.project"}},
		{"sasl allowed", func() *Spec {
			s := validSpec(t)
			s.Kafka.SASL = &SASLSpec{Mechanism: "PLAIN", Credentials: "kafka"}
			return s
		}, nil},
		{"sasl broker", func() *Spec {
			s := validSpec(t)
			s.Kafka.SASL = &SASLSpec{Mechanism: "PLAIN", Credentials: "kafka"}
			s.Kafka.Brokers = append(s.Kafka.Brokers, "10.0.0.2:9092")
			return s
		}, []string{"kafka.brokers[1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCredentialUse(tt.spec(), nil)
			if tt.fields == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			requireNoSecret(t, err.Error())
			var got []string
			for _, e := range flatten(err) {
				var ue *CredentialUseError
				require.ErrorAs(t, e, &ue)
				got = append(got, ue.Field)
			}
			require.Equal(t, tt.fields, got)
		})
	}

	err := CheckCredentialUse(validSpec(t), func(string) (Credentials, error) { return Credentials{}, errors.New("no such credentials") })
	require.ErrorContains(t, err, "no such credentials")
}

// flatten unwraps errors.Join.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

func TestCredentialUseErrorMessage(t *testing.T) {
	err := scoped(&CredentialScope{Buckets: []string{"dumpflow", "logs-*"}}).Permit(Use{Field: "sink.oss", Bucket: "x"})
	require.EqualError(t, err, `credentials "prod" may not be used for sink.oss.bucket "x" (allowed buckets: dumpflow, logs-*)`)
	require.True(t, strings.HasPrefix(err.Error(), "credentials "))
}
