package consumers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKafkaSecurity(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	pw := filepath.Join(dir, "password")
	os.WriteFile(pw, []byte("s3cret-from-file \n"), 0o600)

	tlsCfg, mech, err := KafkaConfig{}.Security()
	if tlsCfg != nil || mech != nil || err != nil {
		t.Errorf("no security: %v %v %v", tlsCfg, mech, err)
	}
	tlsCfg, mech, err = KafkaConfig{TLS: TLSConfig{Enabled: true, ServerName: "kafka"}, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordFile: pw}}.Security()
	if err != nil || tlsCfg == nil || tlsCfg.ServerName != "kafka" || mech == nil || mech.Name() != "PLAIN" {
		t.Errorf("TLS and PLAIN from a file: %v %v %v", tlsCfg, mech, err)
	}
	for _, c := range []struct {
		name string
		k    KafkaConfig
		want string
	}{
		{"CA file missing", KafkaConfig{TLS: TLSConfig{Enabled: true, CAFile: filepath.Join(dir, "none.pem")}}, "kafka.tls.ca_file"},
		{"CA file not PEM", KafkaConfig{TLS: TLSConfig{Enabled: true, CAFile: notPEM}}, "holds no PEM certificate"},
		{"key pair missing", KafkaConfig{TLS: TLSConfig{Enabled: true, CertFile: notPEM, KeyFile: notPEM}}, "kafka.tls.cert_file"},
		{"password file missing", KafkaConfig{SASL: SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", PasswordFile: pw + ".none"}}, "kafka.sasl.password_file"},
		{"unknown mechanism", KafkaConfig{SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "s3cret"}}, "kafka.sasl.mechanism"},
	} {
		_, _, err := c.k.Security()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want an error naming %s and no password", c.name, err, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultKafkaConfig().Validate(); err != nil {
		t.Errorf("default kafka: %v", err)
	}
	if err := DefaultInputConfig().Validate(); err != nil {
		t.Errorf("default input: %v", err)
	}
	k := DefaultKafkaConfig()
	k.Brokers, k.StartOffset, k.HeartbeatInterval = []string{"a:9092", "nohost"}, "middle", time.Hour
	k.SASL.Username = "u"
	want := "brokers[1]: \"nohost\" is not host:port; start_offset: \"middle\" is not one of earliest, latest; " +
		"heartbeat_interval: must be below session_timeout; sasl.mechanism: sasl.username set, but no mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
	if err := k.Validate(); err == nil || err.Error() != want {
		t.Errorf("kafka problems:\n got %v\nwant %s", err, want)
	}
	// Without a mechanism, the message says what was set (a password
	// alone is no user), and never its value.
	for _, tc := range []struct {
		sasl SASLConfig
		want string
	}{
		{SASLConfig{Password: "s3cret"}, "sasl.mechanism: sasl.password set, but no mechanism"},
		{SASLConfig{PasswordFile: "/run/secrets/pw"}, "sasl.mechanism: sasl.password_file set, but no mechanism"},
		{SASLConfig{Username: "u", Password: "s3cret"}, "sasl.mechanism: sasl.username and sasl.password set, but no mechanism"},
	} {
		k := DefaultKafkaConfig()
		k.SASL = tc.sasl
		if err := k.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "user is") {
			t.Errorf("%+v: %v, want %q", tc.sasl, err, tc.want)
		}
	}
	in := InputConfig{Topics: []string{" "}, Format: "xml"}
	if err := in.Validate(); err == nil || !strings.Contains(err.Error(), "topics[0]") || !strings.Contains(err.Error(), "format") || !strings.Contains(err.Error(), "fetch_max_wait") {
		t.Errorf("input problems: %v", err)
	}
	// A hostile format is quoted short, on one line.
	in = DefaultInputConfig()
	in.Format = Format(strings.Repeat("x", 10000) + "\n\x1b[31m")
	if err := in.Validate(); err == nil || len(err.Error()) > 200 || strings.ContainsAny(err.Error(), "\n\x1b") {
		t.Errorf("hostile format: %q", err)
	}
}
