// Package temporalclient dials Temporal with the service's settings and
// routes the SDK's logs into the process's slog handler.
package temporalclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/BurntSushi/toml"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"

	"hires/internal/config"
	"hires/internal/tracing"
)

// Option changes the client's options.
type Option func(*client.Options)

// WithMetrics sends the SDK's metrics to h (see metrics.Registry.Temporal);
// a nil h keeps them off.
func WithMetrics(h client.MetricsHandler) Option {
	return func(o *client.Options) {
		if h != nil {
			o.MetricsHandler = h
		}
	}
}

// WithInterceptors adds client interceptors (see tracing.TemporalInterceptors);
// those that are also worker interceptors, as the SDK's tracing interceptor
// is, apply to the workers built on the client too. None keeps the client
// as it is.
func WithInterceptors(is ...interceptor.ClientInterceptor) Option {
	return func(o *client.Options) {
		o.Interceptors = append(o.Interceptors, is...)
	}
}

// Dial connects to the Temporal frontend at address, without TLS or
// credentials (a local or test server).
func Dial(address, namespace string, logger *slog.Logger, opts ...Option) (client.Client, error) {
	return dial(client.Options{HostPort: address, Namespace: namespace}, logger, opts...)
}

func dial(o client.Options, logger *slog.Logger, opts ...Option) (client.Client, error) {
	o = withOptions(o, logger, opts...)
	c, err := client.Dial(o)
	if err != nil {
		return nil, fmt.Errorf("temporal: dial %s: %w", o.HostPort, err)
	}
	return c, nil
}

// withOptions adds the process's logger and opts to o.
func withOptions(o client.Options, logger *slog.Logger, opts ...Option) client.Options {
	o.Logger = log.NewStructuredLogger(logger)
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Connect sets up tracing and dials Temporal as the configuration and
// Temporal's standard variables say (see ClientOptions), with the SDK's
// metrics going to metricsHandler (nil: none). close closes the client,
// then flushes the last spans.
func Connect(ctx context.Context, cfg config.Config, logger *slog.Logger, metricsHandler client.MetricsHandler) (c client.Client, close func(), err error) {
	o, err := ClientOptions(cfg, envconfig.EnvLookupOS)
	if err != nil {
		return nil, nil, err
	}
	stopTracing, err := tracing.Setup(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	interceptors, err := tracing.TemporalInterceptors(cfg)
	if err == nil {
		c, err = dial(o, logger, WithMetrics(metricsHandler), WithInterceptors(interceptors...))
	}
	if err != nil {
		tracing.Close(stopTracing, logger)
		return nil, nil, err
	}
	return c, func() {
		c.Close()
		tracing.Close(stopTracing, logger)
	}, nil
}

// The variables of Temporal's client configuration
// (go.temporal.io/sdk/contrib/envconfig) this package names in its errors.
const (
	envConfigFile    = "TEMPORAL_CONFIG_FILE"
	envProfile       = "TEMPORAL_PROFILE"
	envAPIKey        = "TEMPORAL_API_KEY"
	envTLS           = "TEMPORAL_TLS"
	envClientCert    = "TEMPORAL_TLS_CLIENT_CERT_PATH"
	envClientCertPEM = "TEMPORAL_TLS_CLIENT_CERT_DATA"
	envClientKey     = "TEMPORAL_TLS_CLIENT_KEY_PATH"
	envClientKeyPEM  = "TEMPORAL_TLS_CLIENT_KEY_DATA"
	envServerCA      = "TEMPORAL_TLS_SERVER_CA_CERT_PATH"
	envServerCAPEM   = "TEMPORAL_TLS_SERVER_CA_CERT_DATA"
)

// ClientOptions are the client's connection options. Temporal's standard
// client configuration comes first (envconfig): a profile of a TOML file
// when TEMPORAL_CONFIG_FILE or TEMPORAL_PROFILE is set, then the TEMPORAL_*
// variables of env over it (address, namespace, API key, TLS, mTLS client
// certificate and key, server CA and name, gRPC metadata). What that leaves
// empty comes from cfg: TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE's defaults,
// and cfg's API key and TLS switch when it was not read from env. An API
// key always goes over TLS. Errors name the variable (or the profile's key)
// and never contain a secret.
func ClientOptions(cfg config.Config, env envconfig.EnvLookup) (client.Options, error) {
	if env == nil {
		env = envconfig.EnvLookupOS
	}
	prof, src, err := loadProfile(env)
	if err != nil {
		return client.Options{}, fmt.Errorf("config: %w", err)
	}
	if prof.APIKey == "" {
		prof.APIKey = cfg.TemporalAPIKey
	}
	if cfg.TemporalTLS {
		if prof.TLS == nil {
			prof.TLS = &envconfig.ClientConfigTLS{}
		}
		prof.TLS.Disabled = false
	}
	if prof.APIKey != "" && prof.TLS != nil && prof.TLS.Disabled {
		return client.Options{}, fmt.Errorf("config: %s is set but %s turns TLS off: an API key is only sent over TLS",
			src.name(envAPIKey, "api_key"), src.name(envTLS, "tls.disabled"))
	}
	if prof.TLS != nil && !prof.TLS.Disabled {
		if err := loadTLSFiles(prof.TLS, src); err != nil {
			return client.Options{}, fmt.Errorf("config: %w", err)
		}
	}
	o, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil { // not expected once loadTLSFiles checked the TLS settings
		return client.Options{}, fmt.Errorf("config: Temporal client settings: %w", err)
	}
	if o.HostPort == "" {
		o.HostPort = cfg.TemporalAddress
	}
	if o.Namespace == "" {
		o.Namespace = cfg.TemporalNamespace
	}
	if t := o.ConnectionOptions.TLS; t != nil && t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	return o, nil
}

// source says where the profile's values came from, for messages.
type source struct {
	env     envconfig.EnvLookup
	file    string // the TOML file read, if any
	profile string
}

// name is the variable that set a value, or else the key of the profile
// that did.
func (s source) name(variable, key string) string {
	if _, ok := s.env.LookupEnv(variable); ok || s.file == "" {
		return variable
	}
	return fmt.Sprintf("%s (%s of profile %q in %s)", variable, key, s.profile, s.file)
}

// loadProfile reads the TOML file named by TEMPORAL_CONFIG_FILE (or
// envconfig's default path, ~/.config/temporalio/temporal.toml, when only
// TEMPORAL_PROFILE is set), takes its TEMPORAL_PROFILE profile ("default"),
// and applies the TEMPORAL_* variables over it, as envconfig does. Without
// either variable no file is read, so that a server process does not pick
// up whatever profile its user's home directory holds.
func loadProfile(env envconfig.EnvLookup) (envconfig.ClientConfigProfile, source, error) {
	var prof envconfig.ClientConfigProfile
	file, _ := env.LookupEnv(envConfigFile)
	profile, _ := env.LookupEnv(envProfile)
	src := source{env: env, profile: profile}
	if src.profile == "" {
		src.profile = envconfig.DefaultConfigFileProfile
	}
	if file != "" || profile != "" {
		fileName := envConfigFile
		if file == "" {
			fileName = envProfile
			if file = envconfig.DefaultConfigFilePath(); file == "" {
				return prof, src, fmt.Errorf("%s: no default configuration directory: set %s", envProfile, envConfigFile)
			}
		}
		src.file = file
		b, err := os.ReadFile(file)
		if err != nil {
			return prof, src, fmt.Errorf("%s: cannot read %s: %w", fileName, file, pathErr(err))
		}
		var conf envconfig.ClientConfig
		if err := conf.FromTOML(b, envconfig.ClientConfigFromTOMLOptions{}); err != nil {
			// TOML errors may quote the file's text, which holds API keys
			// and private keys: say only where.
			var pe toml.ParseError
			if errors.As(err, &pe) {
				return prof, src, fmt.Errorf("%s: %s is not a valid Temporal client configuration (TOML error on line %d)", fileName, file, pe.Position.Line)
			}
			return prof, src, fmt.Errorf("%s: %s is not a valid Temporal client configuration", fileName, file)
		}
		if p := conf.Profiles[src.profile]; p != nil {
			prof = *p
		} else if profile != "" {
			return prof, src, fmt.Errorf("%s: no profile %q in %s", envProfile, profile, file)
		}
	}
	if err := prof.ApplyEnvVars(env); err != nil {
		return prof, src, fmt.Errorf("Temporal client settings: %w", err)
	}
	return prof, src, nil
}

// loadTLSFiles reads the client certificate, its key and the server CA
// into t (paths become PEM data), checking each so that a bad one is an
// error naming its variable.
func loadTLSFiles(t *envconfig.ClientConfigTLS, src source) error {
	var err error
	certName, keyName, caName := src.name(envClientCert, "tls.client_cert_path"),
		src.name(envClientKey, "tls.client_key_path"), src.name(envServerCA, "tls.server_ca_cert_path")
	certPEMName, keyPEMName, caPEMName := src.name(envClientCertPEM, "tls.client_cert_data"),
		src.name(envClientKeyPEM, "tls.client_key_data"), src.name(envServerCAPEM, "tls.server_ca_cert_data")
	if t.ClientCertPath == "" {
		certName = certPEMName
	}
	if t.ClientKeyPath == "" {
		keyName = keyPEMName
	}
	if t.ServerCACertPath == "" {
		caName = caPEMName
	}
	if t.ClientCertData, err = pemFrom(t.ClientCertPath, t.ClientCertData, certName, certPEMName); err != nil {
		return err
	}
	if t.ClientKeyData, err = pemFrom(t.ClientKeyPath, t.ClientKeyData, keyName, keyPEMName); err != nil {
		return err
	}
	if t.ServerCACertData, err = pemFrom(t.ServerCACertPath, t.ServerCACertData, caName, caPEMName); err != nil {
		return err
	}
	t.ClientCertPath, t.ClientKeyPath, t.ServerCACertPath = "", "", ""

	switch {
	case len(t.ClientCertData) > 0 && len(t.ClientKeyData) == 0:
		return fmt.Errorf("%s needs the certificate's private key: set %s or %s", certName, envClientKey, envClientKeyPEM)
	case len(t.ClientKeyData) > 0 && len(t.ClientCertData) == 0:
		return fmt.Errorf("%s needs its client certificate: set %s or %s", keyName, envClientCert, envClientCertPEM)
	case len(t.ClientCertData) > 0:
		// crypto/tls's errors are fixed texts: they never quote the key.
		if _, err := tls.X509KeyPair(t.ClientCertData, t.ClientKeyData); err != nil {
			return fmt.Errorf("%s and %s: not a PEM certificate and its private key: %w", certName, keyName, err)
		}
	}
	if len(t.ServerCACertData) > 0 && !x509.NewCertPool().AppendCertsFromPEM(t.ServerCACertData) {
		return fmt.Errorf("%s: no PEM certificate found", caName)
	}
	return nil
}

// pemFrom is the file at path's content, or data; setting both is an error.
func pemFrom(path string, data []byte, pathName, dataName string) ([]byte, error) {
	if path == "" {
		return data, nil
	}
	if len(data) > 0 {
		return nil, fmt.Errorf("set %s or %s, not both", pathName, dataName)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read %s: %w", pathName, path, pathErr(err))
	}
	return b, nil
}

// pathErr drops the operation and path from a file error (the message names them).
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
