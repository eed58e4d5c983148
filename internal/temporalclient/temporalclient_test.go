package temporalclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"hires/internal/config"
)

// mapEnv is an environment for envconfig.
type mapEnv map[string]string

func (m mapEnv) Environ() []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func (m mapEnv) LookupEnv(k string) (string, bool) { v, ok := m[k]; return v, ok }

// defaults is the configuration with TEMPORAL_ADDRESS and
// TEMPORAL_NAMESPACE unset.
var defaults = config.Config{TemporalAddress: "127.0.0.1:7233", TemporalNamespace: "default"}

const apiKey = "tmprl-api-key-SECRET-0123456789"

// selfSigned writes a self-signed certificate and its private key as PEM
// files in dir, and returns their paths and contents.
func selfSigned(t *testing.T, dir, name string) (certPath, keyPath string, certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certPath, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyPath, keyPEM, 0o600))
	return certPath, keyPath, certPEM, keyPEM
}

// want is what a test expects of client.Options.
type want struct {
	address, namespace string
	tls                bool // ConnectionOptions.TLS set
	tlsDisabled        bool
	apiKey             bool // Credentials set
	clientCerts        int
	rootCAs            bool
	serverName         string
	headers            bool
}

func TestClientOptions(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, certPEM, keyPEM := selfSigned(t, dir, "client.hires.test")
	caPath, _, caPEM, _ := selfSigned(t, dir, "ca.hires.test")
	profiles := filepath.Join(dir, "temporal.toml")
	require.NoError(t, os.WriteFile(profiles, []byte(`
[profile.default]
address = "default.example.com:7233"
namespace = "from-file"

[profile.prod]
address = "prod.tmprl.cloud:7233"
namespace = "prod.acct"
api_key = "`+apiKey+`"

[profile.mtls]
address = "mtls.tmprl.cloud:7233"
namespace = "mtls.acct"
[profile.mtls.tls]
client_cert_path = "`+certPath+`"
client_key_path = "`+keyPath+`"
`), 0o600))
	withKey := defaults
	withKey.TemporalAPIKey = apiKey
	withTLS := defaults
	withTLS.TemporalTLS = true

	for _, tc := range []struct {
		name string
		cfg  config.Config
		env  mapEnv
		want want
	}{
		{"nothing set: the local dev server", defaults, mapEnv{},
			want{address: "127.0.0.1:7233", namespace: "default"}},
		{"address and namespace", defaults, mapEnv{"TEMPORAL_ADDRESS": "temporal:7233", "TEMPORAL_NAMESPACE": "hires"},
			want{address: "temporal:7233", namespace: "hires"}},
		{"the configuration's own values when the variables are unset",
			config.Config{TemporalAddress: "10.0.0.5:7233", TemporalNamespace: "jobs"}, mapEnv{},
			want{address: "10.0.0.5:7233", namespace: "jobs"}},
		{"TLS", defaults, mapEnv{"TEMPORAL_TLS": "true"},
			want{address: "127.0.0.1:7233", namespace: "default", tls: true}},
		{"TLS switched on by the configuration", withTLS, mapEnv{},
			want{address: "127.0.0.1:7233", namespace: "default", tls: true}},
		{"TLS off", defaults, mapEnv{"TEMPORAL_TLS": "false"},
			want{address: "127.0.0.1:7233", namespace: "default", tlsDisabled: true}},
		{"API key implies TLS", defaults, mapEnv{"TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233", "TEMPORAL_NAMESPACE": "ns.acct", "TEMPORAL_API_KEY": apiKey},
			want{address: "ns.acct.tmprl.cloud:7233", namespace: "ns.acct", tls: true, apiKey: true}},
		{"API key from the configuration", withKey, mapEnv{},
			want{address: "127.0.0.1:7233", namespace: "default", tls: true, apiKey: true}},
		{"mTLS from files", defaults, mapEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": certPath, "TEMPORAL_TLS_CLIENT_KEY_PATH": keyPath},
			want{address: "127.0.0.1:7233", namespace: "default", tls: true, clientCerts: 1}},
		{"mTLS from PEM data", defaults, mapEnv{"TEMPORAL_TLS_CLIENT_CERT_DATA": string(certPEM), "TEMPORAL_TLS_CLIENT_KEY_DATA": string(keyPEM)},
			want{address: "127.0.0.1:7233", namespace: "default", tls: true, clientCerts: 1}},
		{"mTLS, certificate from a file and key as data", defaults, mapEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": certPath, "TEMPORAL_TLS_CLIENT_KEY_DATA": string(keyPEM)},
			want{address: "127.0.0.1:7233", namespace: "default", tls: true, clientCerts: 1}},
		{"self-hosted: mTLS, own CA, server name", defaults, mapEnv{
			"TEMPORAL_ADDRESS": "10.1.2.3:7233", "TEMPORAL_TLS_CLIENT_CERT_PATH": certPath, "TEMPORAL_TLS_CLIENT_KEY_PATH": keyPath,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH": caPath, "TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
		}, want{address: "10.1.2.3:7233", namespace: "default", tls: true, clientCerts: 1, rootCAs: true, serverName: "temporal.internal"}},
		{"CA as data", defaults, mapEnv{"TEMPORAL_TLS_SERVER_CA_CERT_DATA": string(caPEM)},
			want{address: "127.0.0.1:7233", namespace: "default", tls: true, rootCAs: true}},
		{"gRPC metadata", defaults, mapEnv{"TEMPORAL_GRPC_META_X_TENANT": "shop"},
			want{address: "127.0.0.1:7233", namespace: "default", headers: true}},
		{"config file's default profile", defaults, mapEnv{"TEMPORAL_CONFIG_FILE": profiles},
			want{address: "default.example.com:7233", namespace: "from-file"}},
		{"config file's profile with an API key", defaults, mapEnv{"TEMPORAL_CONFIG_FILE": profiles, "TEMPORAL_PROFILE": "prod"},
			want{address: "prod.tmprl.cloud:7233", namespace: "prod.acct", tls: true, apiKey: true}},
		{"variables win over the profile", defaults, mapEnv{"TEMPORAL_CONFIG_FILE": profiles, "TEMPORAL_PROFILE": "prod", "TEMPORAL_NAMESPACE": "staging.acct"},
			want{address: "prod.tmprl.cloud:7233", namespace: "staging.acct", tls: true, apiKey: true}},
		{"config file's mTLS profile", defaults, mapEnv{"TEMPORAL_CONFIG_FILE": profiles, "TEMPORAL_PROFILE": "mtls"},
			want{address: "mtls.tmprl.cloud:7233", namespace: "mtls.acct", tls: true, clientCerts: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ClientOptions(tc.cfg, tc.env)
			require.NoError(t, err)
			got := want{
				address: o.HostPort, namespace: o.Namespace,
				tls: o.ConnectionOptions.TLS != nil, tlsDisabled: o.ConnectionOptions.TLSDisabled,
				apiKey: o.Credentials != nil, headers: o.HeadersProvider != nil,
			}
			if c := o.ConnectionOptions.TLS; c != nil {
				require.GreaterOrEqual(t, c.MinVersion, uint16(tls.VersionTLS12))
				require.False(t, c.InsecureSkipVerify)
				got.clientCerts, got.rootCAs, got.serverName = len(c.Certificates), c.RootCAs != nil, c.ServerName
				for _, cert := range c.Certificates {
					leaf, err := x509.ParseCertificate(cert.Certificate[0])
					require.NoError(t, err)
					require.Equal(t, "client.hires.test", leaf.Subject.CommonName)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestClientOptionsErrors(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, certPEM, keyPEM := selfSigned(t, dir, "client.hires.test")
	otherCert, _, _, _ := selfSigned(t, dir, "other.hires.test")
	unreadable := filepath.Join(dir, "unreadable.key") // a directory: unreadable even for root
	require.NoError(t, os.Mkdir(unreadable, 0o700))
	notPEM := filepath.Join(dir, "ca.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate "+apiKey), 0o600))
	badTOML := filepath.Join(dir, "bad.toml")
	require.NoError(t, os.WriteFile(badTOML, []byte("[profile.default]\napi_key = "+apiKey+"\n"), 0o600))
	profiles := filepath.Join(dir, "temporal.toml")
	require.NoError(t, os.WriteFile(profiles, []byte("[profile.default]\naddress = \"a:7233\"\n[profile.nocert.tls]\nclient_cert_path = \""+filepath.Join(dir, "gone.crt")+"\"\nclient_key_path = \""+keyPath+"\"\n"), 0o600))
	garbageKey := "-----BEGIN PRIVATE KEY-----\nU0VDUkVULUtFWS1NQVRFUklBTA==\n-----END PRIVATE KEY-----\n" // "SECRET-KEY-MATERIAL"

	for _, tc := range []struct {
		name  string
		env   mapEnv
		wants []string // in the message
	}{
		{"certificate path missing", mapEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": filepath.Join(dir, "missing.crt"), "TEMPORAL_TLS_CLIENT_KEY_PATH": keyPath},
			[]string{"TEMPORAL_TLS_CLIENT_CERT_PATH", "missing.crt", "no such file"}},
		{"key file unreadable", mapEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": certPath, "TEMPORAL_TLS_CLIENT_KEY_PATH": unreadable},
			[]string{"TEMPORAL_TLS_CLIENT_KEY_PATH", "unreadable.key", "is a directory"}},
		{"CA path missing", mapEnv{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": filepath.Join(dir, "missing-ca.pem")},
			[]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH", "missing-ca.pem"}},
		{"CA file without a certificate", mapEnv{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": notPEM},
			[]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH", "no PEM certificate"}},
		{"certificate without its key", mapEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": certPath},
			[]string{"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"}},
		{"key without its certificate", mapEnv{"TEMPORAL_TLS_CLIENT_KEY_DATA": string(keyPEM)},
			[]string{"TEMPORAL_TLS_CLIENT_KEY_DATA", "TEMPORAL_TLS_CLIENT_CERT_PATH"}},
		{"key path and data both", mapEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": certPath, "TEMPORAL_TLS_CLIENT_KEY_PATH": keyPath, "TEMPORAL_TLS_CLIENT_KEY_DATA": string(keyPEM)},
			[]string{"TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA", "not both"}},
		{"key of another certificate", mapEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": otherCert, "TEMPORAL_TLS_CLIENT_KEY_PATH": keyPath},
			[]string{"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "private key does not match"}},
		{"garbage key data", mapEnv{"TEMPORAL_TLS_CLIENT_CERT_DATA": string(certPEM), "TEMPORAL_TLS_CLIENT_KEY_DATA": garbageKey},
			[]string{"TEMPORAL_TLS_CLIENT_CERT_DATA", "TEMPORAL_TLS_CLIENT_KEY_DATA"}},
		{"API key with TLS off", mapEnv{"TEMPORAL_API_KEY": apiKey, "TEMPORAL_TLS": "false"},
			[]string{"TEMPORAL_API_KEY", "TEMPORAL_TLS", "only sent over TLS"}},
		{"config file missing", mapEnv{"TEMPORAL_CONFIG_FILE": filepath.Join(dir, "nope.toml")},
			[]string{"TEMPORAL_CONFIG_FILE", "nope.toml", "no such file"}},
		{"config file not TOML", mapEnv{"TEMPORAL_CONFIG_FILE": badTOML},
			[]string{"TEMPORAL_CONFIG_FILE", "bad.toml", "line 2"}},
		{"profile not in the file", mapEnv{"TEMPORAL_CONFIG_FILE": profiles, "TEMPORAL_PROFILE": "staging"},
			[]string{"TEMPORAL_PROFILE", `"staging"`}},
		{"profile's certificate missing", mapEnv{"TEMPORAL_CONFIG_FILE": profiles, "TEMPORAL_PROFILE": "nocert"},
			[]string{"TEMPORAL_TLS_CLIENT_CERT_PATH", `tls.client_cert_path of profile "nocert"`, "gone.crt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ClientOptions(defaults, tc.env)
			require.Error(t, err)
			msg := err.Error()
			require.True(t, strings.HasPrefix(msg, "config: "), msg)
			for _, w := range tc.wants {
				require.Contains(t, msg, w)
			}
			for _, secret := range []string{apiKey, "SECRET", "PRIVATE KEY", string(keyPEM[40:80]), string(certPEM[40:80])} {
				require.NotContains(t, msg, secret, "the error shows a secret")
			}
		})
	}
}

// Without TEMPORAL_CONFIG_FILE or TEMPORAL_PROFILE the user's default
// config file is not read; TEMPORAL_PROFILE alone reads it.
func TestDefaultConfigFileOnlyWhenAsked(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	require.NoError(t, os.MkdirAll(filepath.Join(home, "temporalio"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "temporalio", "temporal.toml"),
		[]byte("[profile.default]\naddress = \"cloud.example.com:7233\"\napi_key = \""+apiKey+"\"\n"), 0o600))

	o, err := ClientOptions(defaults, mapEnv{})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:7233", o.HostPort)
	require.Nil(t, o.Credentials)

	o, err = ClientOptions(defaults, mapEnv{"TEMPORAL_PROFILE": "default"})
	require.NoError(t, err)
	require.Equal(t, "cloud.example.com:7233", o.HostPort)
	require.NotNil(t, o.Credentials)
}

type probeInterceptor struct {
	interceptor.ClientInterceptorBase
}

// The options Connect dials with keep the process's logger, metrics
// handler and interceptors next to what ClientOptions read.
func TestWithOptionsKeepsLoggerMetricsAndInterceptors(t *testing.T) {
	o, err := ClientOptions(defaults, mapEnv{"TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233", "TEMPORAL_API_KEY": apiKey})
	require.NoError(t, err)
	metrics := client.MetricsNopHandler
	probe := &probeInterceptor{}
	o = withOptions(o, slog.New(slog.NewTextHandler(io.Discard, nil)), WithMetrics(metrics), WithInterceptors(probe))
	require.NotNil(t, o.Logger)
	require.Equal(t, metrics, o.MetricsHandler)
	require.Equal(t, []interceptor.ClientInterceptor{probe}, o.Interceptors)
	require.Equal(t, "ns.acct.tmprl.cloud:7233", o.HostPort)
	require.NotNil(t, o.Credentials)
	require.NotNil(t, o.ConnectionOptions.TLS)
}
