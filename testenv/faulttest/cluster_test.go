package faulttest

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/record"
)

const (
	partitions     = 3
	produceTimeout = 5 * time.Second
)

// fleet starts two relays on the cluster, on a topic of their own, with
// lease timeout lease.
func fleet(t *testing.T, c *cluster, lease time.Duration) (topic string, relays []*relayProc) {
	t.Helper()
	topic = fmt.Sprintf("faults.%s.%d", strings.ToLower(t.Name()), time.Now().UnixNano())
	args := []string{"--brokers", strings.Join(c.addrs, ","), "--topic", topic, "--snapshot-topic", topic + ".snapshots",
		"--partitions", fmt.Sprint(partitions), "--produce-timeout", produceTimeout.String(),
		"--lease-timeout", lease.String(), "--replication-factor", "3"}
	for _, name := range []string{"relay-a", "relay-b"} {
		relays = append(relays, startRelay(t, name, args...))
	}
	return topic, relays
}

// TestLeaderKilled: the leader of the room's partition is SIGKILLed under
// load and started again later. Every acknowledged publish is delivered once
// and in order, publishers see at most log_unavailable (their retries with the
// same mid deliver once), and no relay drops its clients.
func TestLeaderKilled(t *testing.T) {
	c := needCluster(t)
	topic, relays := fleet(t, c, 10*time.Second)
	room := "fault-leader"
	l := startLoad(t, room, relays, 2, 4, 20)
	l.waitAcked(t, 20, 30*time.Second)

	leader := c.leader(t, topic, record.PartitionOf(room, partitions))
	c.kill(t, leader)
	// The controller fences the dead broker after its session timeout (6 s)
	// and moves the leadership; publishes resume on the new leader.
	before := l.acked()
	l.waitAcked(t, before, 60*time.Second)
	t.Logf("publishes resumed after the leader's death (%d acked before)", before)
	time.Sleep(3 * time.Second)
	c.start(t, leader)
	time.Sleep(3 * time.Second)

	res := l.finish(t, 60*time.Second)
	if codes := l.closeCodes(); len(codes) != 0 {
		t.Errorf("relays closed subscribers' connections (codes %v): a broker failover must not drop clients", codes)
	}
	t.Logf("log_unavailable answers: %d, retries deduplicated: %d", res.Publish.LogUnavailable, res.Publish.DuplicateAcks)
	for _, r := range relays {
		if !r.running() {
			t.Errorf("relay %s exited", r.name)
		}
	}
}

// TestBelowMinISR: two of the three brokers are SIGKILLed, leaving the room's
// partition below min.insync.replicas. Publishes are refused with
// log_unavailable and none is acknowledged; when the brokers return, the
// relays serve again by themselves (no restart, no client dropped), and
// nothing acknowledged is lost.
func TestBelowMinISR(t *testing.T) {
	c := needCluster(t)
	topic, relays := fleet(t, c, 10*time.Second)
	room := "fault-minisr"
	l := startLoad(t, room, relays, 2, 4, 20)
	l.waitAcked(t, 20, 30*time.Second)

	leader := c.leader(t, topic, record.PartitionOf(room, partitions))
	victims := []int{leader, leader%3 + 1}
	for _, n := range victims {
		c.kill(t, n)
	}
	// Publishes in flight when the brokers died settle within the produce
	// timeout; after that nothing may be acknowledged.
	time.Sleep(produceTimeout + 3*time.Second)
	frozen, refusedBefore := l.acked(), l.logUnavailable()
	time.Sleep(2*produceTimeout + 2*time.Second)
	if got := l.acked(); got != frozen {
		t.Errorf("%d publishes acknowledged with two of three brokers down (min.insync.replicas 2)", got-frozen)
	}
	if l.logUnavailable() == refusedBefore {
		t.Errorf("no publish was refused with log_unavailable while the partition was below min.insync.replicas")
	}
	for _, n := range victims {
		c.start(t, n)
	}
	l.waitAcked(t, frozen, 90*time.Second)
	t.Logf("publishes resumed after the brokers returned (%d acked before)", frozen)
	time.Sleep(3 * time.Second)

	res := l.finish(t, 90*time.Second)
	if res.Publish.LogUnavailable == 0 {
		t.Errorf("publishers saw no log_unavailable")
	}
	if codes := l.closeCodes(); len(codes) != 0 {
		t.Errorf("relays closed subscribers' connections (codes %v): a log outage must not drop clients", codes)
	}
	for _, r := range relays {
		if !r.running() {
			t.Errorf("relay %s exited", r.name)
		}
	}
}

// TestRelayCutOff: a relay is SIGSTOPped for four times its lease, then
// SIGCONTed. The other relay has ended its session meanwhile; the stopped
// relay, resuming, closes its sockets with 4002; its clients resume elsewhere
// with nothing lost or doubled, and presence is the same on both relays
// afterwards, with no member of the ended session left.
func TestRelayCutOff(t *testing.T) {
	c := needCluster(t)
	const lease = 3 * time.Second
	_, relays := fleet(t, c, lease)
	a, b := relays[0], relays[1]
	room := "fault-cutoff"
	l := startLoad(t, room, relays, 2, 3, 20)
	l.waitAcked(t, 20, 30*time.Second)

	a.signal(t, syscall.SIGSTOP)
	t.Logf("SIGSTOPped %s", a.name)
	// Four lease timeouts: the other relay needs one of silence, counted
	// while its own leases fold in time, even on a busy machine.
	time.Sleep(4 * lease)
	a.signal(t, syscall.SIGCONT)
	t.Logf("SIGCONTed %s", a.name)
	time.Sleep(2 * lease)

	// Presence: the same members on both relays, every subscriber once and
	// none from a's ended session (the watchers are members too).
	wa, wb := newWatcher(t, a, room), newWatcher(t, b, room)
	samePresence(t, wa, wb, len(l.subs)+2)

	l.finish(t, 60*time.Second)
	var cutOff int
	for _, s := range l.subs {
		if strings.HasPrefix(s.Name, "sub-"+a.name) {
			cutOff += s.CloseCodes()[4002]
		}
	}
	if cutOff == 0 {
		t.Errorf("%s's subscribers were not closed with 4002 (codes %v)", a.name, l.closeCodes())
	}
	if !strings.Contains(b.logText(t), "expiring it") {
		t.Errorf("%s did not expire %s's session", b.name, a.name)
	}
	if !strings.Contains(a.logText(t), "this relay's session was ended by the log") {
		t.Errorf("%s did not find its session ended", a.name)
	}
	// The subscribers have left: only the watchers remain, everywhere.
	samePresence(t, wa, wb, 2)
}

// samePresence waits until both watchers' relays show the same n members.
func samePresence(t *testing.T, wa, wb *watcher, n int) {
	t.Helper()
	var pa, pb []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		pa, pb = wa.presence(t), wb.presence(t)
		if slices.Equal(pa, pb) && len(pa) == n {
			t.Logf("presence on both relays: %v", pa)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence differs or is not %d members:\n%s: %v\n%s: %v", n, wa.r.name, pa, wb.r.name, pb)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
