package stream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/internal/kafkatest"
)

// testCA is a certificate authority and a broker certificate for
// 127.0.0.1 that it signed, made for one test.
type testCA struct {
	caFile string // PEM of the CA
	server tls.Certificate
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nerstream test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return testCA{caFile: caFile, server: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}
}

// TestSecurePipeline runs the stream against the embedded broker with each
// SASL mechanism, over TLS or not: every document is annotated, and the
// test's own clients need the same credentials to see it.
func TestSecurePipeline(t *testing.T) {
	cases := []struct {
		mechanism string
		tls       bool
		fromFile  bool // the password from kafka.sasl.password_file
	}{
		{"SCRAM-SHA-512", true, true}, // issue 6's SASL/SCRAM + TLS
		{"SCRAM-SHA-256", false, false},
		{"PLAIN", true, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s tls=%v", c.mechanism, c.tls), func(t *testing.T) {
			const user, password, n = "nerstream", "s3cret-pass", 25
			opts := []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(c.mechanism, user, password)}
			cfg := kafkatest.StreamConfig(nil)
			cfg.Kafka.SASL = consumers.SASLConfig{Mechanism: c.mechanism, Username: user, Password: password}
			if c.fromFile {
				f := filepath.Join(t.TempDir(), "password")
				os.WriteFile(f, []byte(password+"\n"), 0o600)
				cfg.Kafka.SASL.Password, cfg.Kafka.SASL.PasswordFile = "", f
			}
			if c.tls {
				ca := newTestCA(t)
				opts = append(opts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12}))
				cfg.Kafka.TLS = consumers.TLSConfig{Enabled: true, CAFile: ca.caFile}
			}
			cluster := kafkatest.StartBroker(t, 3, opts...)
			cfg.Kafka.Brokers = cluster.ListenAddrs()
			if err := cfg.ValidateRun(); err != nil {
				t.Fatal(err)
			}
			tlsCfg, mech, err := cfg.Kafka.Security()
			if err != nil {
				t.Fatal(err)
			}
			secureProduce(t, cfg.Kafka.Brokers, tlsCfg, mech, n)
			rec := &kafkatest.InstantRecognizer{}
			runMember(t, cfg, rec, "secure")
			deadline := time.Now().Add(30 * time.Second)
			for {
				got := secureCount(t, cfg.Kafka.Brokers, tlsCfg, mech, kafkatest.OutTopic, 3)
				if got == n {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d annotations after 30s, want %d (recognizer saw %d)", got, n, rec.Seen())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestSecurityRefusals: a wrong password, a missing mechanism and an
// untrusted certificate are refused, and the errors say why without the
// password.
func TestSecurityRefusals(t *testing.T) {
	ca := newTestCA(t)
	cluster := kafkatest.StartBroker(t, 1, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "u", "right-pass"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12}))
	other := newTestCA(t) // a CA that did not sign the broker
	cases := []struct {
		name string
		k    consumers.KafkaConfig
		want string
	}{
		{"wrong password", consumers.KafkaConfig{TLS: consumers.TLSConfig{Enabled: true, CAFile: ca.caFile},
			// kfake closes the connection on a failed login, where Kafka
			// answers SASL_AUTHENTICATION_FAILED, so the error says little.
			SASL: consumers.SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "wrong-pass"}}, ""},
		{"untrusted certificate", consumers.KafkaConfig{TLS: consumers.TLSConfig{Enabled: true, CAFile: other.caFile},
			SASL: consumers.SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "right-pass"}}, "certificate"},
		{"no TLS", consumers.KafkaConfig{SASL: consumers.SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "right-pass"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := kafkatest.StreamConfig(cluster.ListenAddrs())
			cfg.Kafka.TLS, cfg.Kafka.SASL = c.k.TLS, c.k.SASL
			m, err := New(cfg, nil, WithRecognizer(&kafkatest.InstantRecognizer{}), WithModelName("test-double"), WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			defer m.writer.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = m.writer.Check(ctx, kafkatest.OutTopic)
			if err == nil {
				t.Fatal("the brokers were reached")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "pass") {
				t.Errorf("error %q: want one mentioning %q and no password", err, c.want)
			}
		})
	}
	// A file that is not there is a usage error naming its field.
	cfg := kafkatest.StreamConfig(cluster.ListenAddrs())
	cfg.Kafka.TLS = consumers.TLSConfig{Enabled: true, CAFile: filepath.Join(t.TempDir(), "none.pem")}
	if _, err := New(cfg, nil, WithRecognizer(&kafkatest.InstantRecognizer{}), WithModelName("x"), WithLogger(slog.New(slog.DiscardHandler))); err == nil || !strings.Contains(err.Error(), "kafka.tls.ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
}

func secureTransport(tlsCfg *tls.Config, mech sasl.Mechanism) *kafka.Transport {
	return &kafka.Transport{TLS: tlsCfg, SASL: mech}
}

func secureProduce(t *testing.T, brokers []string, tlsCfg *tls.Config, mech sasl.Mechanism, n int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: kafkatest.InTopic, Balancer: &kafka.RoundRobin{}, BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll, Transport: secureTransport(tlsCfg, mech)}
	defer w.Close()
	var msgs []kafka.Message
	for i := range n {
		v, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("doc-%d", i), "text": fmt.Sprintf("Ada wrote note %d.", i)})
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "doc-%d", i), Value: v})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// secureCount is the number of records in topic, from its partitions' ends.
func secureCount(t *testing.T, brokers []string, tlsCfg *tls.Config, mech sasl.Mechanism, topic string, partitions int) int {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: secureTransport(tlsCfg, mech)}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := cl.ListOffsets(context.Background(), req)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	n := 0
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("list offsets %s/%d: %v", topic, po.Partition, po.Error)
		}
		n += int(po.LastOffset)
	}
	return n
}
