// Package remotelabtest runs Go tests against a shared remotelab lab host,
// and fakes one for unit tests.
//
// # Lab tests
//
// One line in TestMain and one line per test:
//
//	func TestMain(m *testing.M) { os.Exit(remotelabtest.Main(m)) }
//
//	func TestOSPF(t *testing.T) {
//		lab := remotelabtest.Lab(t, "testdata/ospf.yml")
//		r1 := lab.Device("r1")
//		...
//	}
//
// Main gives the test binary one session on the server named by
// REMOTE_LAB_URL, opened at the first Lab call (a binary whose tests use no
// lab never queues) and closed when the tests end, also on a panic in the
// main goroutine and on SIGINT or SIGTERM. A binary killed outright stops
// sending heartbeats and the server ends its session after the active TTL.
//
// Lab acquires the lab for the calling test and releases it in t.Cleanup.
// Tests of one binary that use the same topology share the running lab;
// parallel tests that need different labs take turns. Without
// REMOTE_LAB_URL lab tests are skipped, or fail when REMOTE_LAB_REQUIRED=1.
// The client's other settings come from the environment too (see
// client.FromEnv); REMOTE_LAB_HEARTBEAT_INTERVAL must stay well below the
// server's active TTL. docs/go-testing.md has the whole story.
//
// # Unit tests without a lab host
//
// NewServer starts an in-process remotelabd whose labs are simulated by a
// [FakeRunner], for tests of code that uses package client:
//
//	srv := remotelabtest.NewServer(t)
//	c := srv.Client()
//
// With WithoutNetwork the client reaches the server through an in-memory
// transport, so server and client can run inside a testing/synctest
// bubble, where TTLs and heartbeats take no real time.
package remotelabtest
