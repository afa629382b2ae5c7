package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/nerstream/nerstream/config"
)

// kafkaSecurity builds the TLS configuration and the SASL mechanism of the
// kafka section, reading the files it names. Either may be nil: TLS off,
// no SASL. Errors name the field and never hold the password.
func kafkaSecurity(k config.Kafka) (*tls.Config, sasl.Mechanism, error) {
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
	var mech sasl.Mechanism
	switch s.Mechanism {
	case "PLAIN":
		mech = plain.Mechanism{Username: s.Username, Password: password}
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if s.Mechanism == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, password)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka.sasl: %w", err)
		}
		mech = m
	default:
		return nil, nil, fmt.Errorf("kafka.sasl.mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
	}
	return tlsCfg, mech, nil
}
