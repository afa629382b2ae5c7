package consumers

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/nerstream/nerstream/internal/problems"
)

// KafkaConfig is the kafka section of the configuration: the brokers, the
// consumer group and the security of every connection. The input owns it
// because membership is the input's; the producer of the outputs is given
// the same brokers, client id, TLS and SASL.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port. Required by run.
	Brokers []string `yaml:"brokers"`
	// GroupID is the consumer group. Members with the same id share the
	// input partitions. Default: "nerstream".
	GroupID string `yaml:"group_id"`
	// ClientID names this process to the brokers. Default: "nerstream".
	ClientID string `yaml:"client_id"`
	// StartOffset is where a partition with no committed offset starts:
	// "earliest" (default: nothing already in the topic is skipped) or
	// "latest".
	StartOffset string `yaml:"start_offset"`
	// SessionTimeout is how long the coordinator waits for a heartbeat
	// before it expels a member and gives its partitions to the others.
	// Default: 30s. So a member that crashes (no graceful leave) stalls
	// its partitions about this long: `bench scale --crash-members`
	// measured recovery at the session timeout plus a quarter second.
	// Lower it for faster take-over; heartbeats run beside the model, so
	// a long batch does not miss them, but a broker that is briefly
	// unreachable then expels healthy members sooner.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often a member heartbeats; a rebalance is
	// noticed within one interval. Default: 3s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin in a rebalance; members finish their work in flight within
	// shutdown_timeout, inside it. Default: 30s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// TLS encrypts the connections to the brokers.
	TLS TLSConfig `yaml:"tls"`
	// SASL authenticates this process to the brokers.
	SASL SASLConfig `yaml:"sasl"`
}

// TLSConfig configures TLS to the brokers. Every connection (the group's,
// the fetches', the writer's) uses it.
type TLSConfig struct {
	// Enabled turns TLS on. Default: false (plain text). Setting any file
	// below does not turn it on by itself.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that signed the brokers'
	// certificates. Default: "" (the system's roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this client's certificate and key, PEM,
	// for brokers that ask for one (mutual TLS). Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the brokers' certificates must carry.
	// Default: "" (the host of each broker address).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate, which lets anyone on the
	// path read and change the stream. Default: false; for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASLConfig configures SASL authentication to the brokers.
type SASLConfig struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512". Default:
	// "" (no SASL). PLAIN sends the password as it is: use it with TLS.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user. Required with a mechanism.
	Username string `yaml:"username"`
	// Password is the user's password. Prefer NERSTREAM_KAFKA_SASL_PASSWORD
	// or password_file to writing it here. Default: "".
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is a file that holds the password (a mounted secret);
	// trailing white space is dropped. Default: "". Set it or password,
	// not both.
	PasswordFile string `yaml:"password_file"`
}

// The start offsets of [KafkaConfig.StartOffset].
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// DefaultKafkaConfig returns the kafka settings that zero values stand for.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		GroupID:           "nerstream",
		ClientID:          "nerstream",
		StartOffset:       StartEarliest,
		SessionTimeout:    30 * time.Second,
		HeartbeatInterval: 3 * time.Second,
		RebalanceTimeout:  30 * time.Second,
	}
}

// Validate reports every problem of the settings, at their YAML keys. It
// reads no file: [KafkaConfig.Security] does.
func (k KafkaConfig) Validate() error {
	var p problems.List
	for i, b := range k.Brokers {
		if !strings.Contains(b, ":") {
			p.Addf(fmt.Sprintf("brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if strings.TrimSpace(k.GroupID) == "" {
		p.Addf("group_id", "must not be empty")
	}
	if k.StartOffset != StartEarliest && k.StartOffset != StartLatest {
		p.Addf("start_offset", "%q is not one of earliest, latest", k.StartOffset)
	}
	problems.Positive(&p, "session_timeout", k.SessionTimeout)
	problems.Positive(&p, "heartbeat_interval", k.HeartbeatInterval)
	problems.Positive(&p, "rebalance_timeout", k.RebalanceTimeout)
	if k.HeartbeatInterval >= k.SessionTimeout && k.SessionTimeout > 0 {
		p.Addf("heartbeat_interval", "must be below session_timeout")
	}
	t := k.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.Addf("tls.key_file", "tls.cert_file and tls.key_file go together")
	}
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		p.Addf("tls.enabled", "TLS settings are given but TLS is off: set tls.enabled: true")
	}
	s := k.SASL
	switch s.Mechanism {
	case "":
		// Say what was set: a password alone is no "user".
		var set []string
		for _, f := range []struct{ key, value string }{{"username", s.Username}, {"password", s.Password}, {"password_file", s.PasswordFile}} {
			if f.value != "" {
				set = append(set, "sasl."+f.key)
			}
		}
		if len(set) > 0 {
			p.Addf("sasl.mechanism", "%s set, but no mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", strings.Join(set, " and "))
		}
		return p.Err()
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		p.Addf("sasl.mechanism", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
	}
	if s.Username == "" {
		p.Addf("sasl.username", "required with a SASL mechanism")
	}
	if s.Password != "" && s.PasswordFile != "" {
		p.Addf("sasl.password_file", "set sasl.password or sasl.password_file, not both")
	}
	return p.Err()
}

// Security builds the TLS configuration and the SASL mechanism of the
// settings, reading the files they name. Either may be nil: TLS off, no
// SASL. Errors name the setting ("kafka.tls.ca_file: …") and never hold
// the password.
func (k KafkaConfig) Security() (*tls.Config, sasl.Mechanism, error) {
	var tlsCfg *tls.Config
	if t := k.TLS; t.Enabled {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("kafka.tls.ca_file: %s holds no PEM certificate", t.CAFile)
			}
			tlsCfg.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, nil, fmt.Errorf("kafka.tls.cert_file, key_file: %w", err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
	}
	s := k.SASL
	if s.Mechanism == "" {
		return tlsCfg, nil, nil
	}
	password := s.Password
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka.sasl.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), " \t\r\n")
	}
	switch s.Mechanism {
	case "PLAIN":
		return tlsCfg, plain.Mechanism{Username: s.Username, Password: password}, nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if s.Mechanism == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, password)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka.sasl: %w", err)
		}
		return tlsCfg, m, nil
	}
	return nil, nil, fmt.Errorf("kafka.sasl.mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
}

// dialer is the dialer of every connection the settings make.
func (k KafkaConfig) dialer(tlsCfg *tls.Config, mech sasl.Mechanism) *kafka.Dialer {
	return &kafka.Dialer{ClientID: k.ClientID, Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
}

// InputConfig is the input section of the configuration: the input topics
// and how records are decoded.
type InputConfig struct {
	// Topics are the input topics. Required by run.
	Topics []string `yaml:"topics"`
	// Format is "json" (default: {"id","text","entity_types","metadata"})
	// or "text" (the whole value is the text).
	Format Format `yaml:"format"`
	// Fields are the members of a JSON value that hold the document.
	Fields FieldsConfig `yaml:"fields"`
	// MaxBytes bounds a record's value, after snappy decompression; a
	// larger one is a dead letter (value_too_large). Default: 1 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// FetchMaxBytes bounds one fetch from one partition. Default: 1 MiB.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// FetchMaxWait is how long the broker may hold a fetch that has no
	// data yet. Default: 250ms.
	FetchMaxWait time.Duration `yaml:"fetch_max_wait"`
}

// DefaultInputConfig returns the input settings that zero values stand for.
func DefaultInputConfig() InputConfig {
	return InputConfig{Format: FormatJSON, Fields: DefaultFieldsConfig(), MaxBytes: 1 << 20, FetchMaxBytes: 1 << 20, FetchMaxWait: 250 * time.Millisecond}
}

// Validate reports every problem of the settings, at their YAML keys.
func (c InputConfig) Validate() error {
	var p problems.List
	for i, t := range c.Topics {
		if strings.TrimSpace(t) == "" {
			p.Addf(fmt.Sprintf("topics[%d]", i), "must not be empty")
		}
	}
	if c.Format != FormatJSON && c.Format != FormatText {
		p.Addf("format", "%s is not one of json, text", quoteShort(string(c.Format)))
	}
	p.Add("fields", c.Fields.Validate())
	problems.Positive(&p, "max_bytes", c.MaxBytes)
	problems.Positive(&p, "fetch_max_bytes", c.FetchMaxBytes)
	problems.Positive(&p, "fetch_max_wait", c.FetchMaxWait)
	return p.Err()
}
