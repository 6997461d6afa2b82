// Package kafkatest finds the real Apache Kafka that tests run against
// (testenv/kafka/start.sh; testenv/test.sh starts one), and says whether a
// test that lacks what it needs must fail rather than skip. It holds no
// state; its functions are safe for concurrent use.
package kafkatest

import (
	"os"
	"strings"
	"testing"
)

// Required reports whether every test must run: under CI=true, or with
// ROOMLOG_REQUIRE_KAFKA=1 (testenv/test.sh sets it), a missing broker, tool
// or package fails the test instead of skipping it.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("ROOMLOG_REQUIRE_KAFKA") == "1"
}

// Brokers returns the seed brokers of the real Kafka that
// ROOMLOG_TEST_BROKERS names (comma-separated). When it names none, the test
// fails if Required, and is skipped otherwise.
func Brokers(t testing.TB) []string {
	t.Helper()
	env := os.Getenv("ROOMLOG_TEST_BROKERS")
	if env == "" {
		if Required() {
			t.Fatal("ROOMLOG_TEST_BROKERS is not set: the real-broker run is required here (start one with testenv/kafka/start.sh)")
		}
		t.Skip("ROOMLOG_TEST_BROKERS not set; start a broker with testenv/kafka/start.sh")
	}
	return strings.Split(env, ",")
}
