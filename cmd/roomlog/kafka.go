package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaFlags connect to a secured Kafka: TLS (MSK on 9094, Redpanda Cloud,
// Confluent) and SASL PLAIN or SCRAM.
type kafkaFlags struct {
	tls          bool
	tlsCA        string
	mechanism    string
	username     string
	password     string
	passwordFile string
}

func (k *kafkaFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&k.tls, "kafka-tls", false, "connect to the brokers over TLS")
	fs.StringVar(&k.tlsCA, "kafka-tls-ca-file", "", "PEM file of the CA that signs the brokers' certificates (default: the system's roots)")
	fs.StringVar(&k.mechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)")
	fs.StringVar(&k.username, "kafka-sasl-username", "", "SASL user name")
	fs.StringVar(&k.password, "kafka-sasl-password", "", "SASL password (prefer the environment variable or --kafka-sasl-password-file: flags show in ps)")
	fs.StringVar(&k.passwordFile, "kafka-sasl-password-file", "", "file holding the SASL password")
}

// opts returns the franz-go options for the flags.
func (k *kafkaFlags) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.tls || k.tlsCA != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.tlsCA != "" {
			pem, err := os.ReadFile(k.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("--kafka-tls-ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--kafka-tls-ca-file %s: no PEM certificate in it", k.tlsCA)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if k.mechanism == "" {
		if k.username != "" {
			return nil, errors.New("--kafka-sasl-username without --kafka-sasl-mechanism")
		}
		return opts, nil
	}
	pass := k.password
	if k.passwordFile != "" {
		b, err := os.ReadFile(k.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-sasl-password-file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if k.username == "" || pass == "" {
		return nil, errors.New("SASL needs --kafka-sasl-username and a password (ROOMLOG_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file)")
	}
	switch strings.ToUpper(k.mechanism) {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.username, Pass: pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.username, Pass: pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.username, Pass: pass}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.mechanism)
	}
	return opts, nil
}
