package consumers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// claimEvent is what the test's handler reports: a claim handed out by a
// generation, or (ended) the end of that claim's context.
type claimEvent struct {
	member string // the test's name for the member: "A", "B"
	claim  *Claim
	gen    int32
	ended  bool
}

func (e claimEvent) String() string {
	what := "claimed"
	if e.ended {
		what = "ended"
	}
	return fmt.Sprintf("%s %s %s/%d in generation %d (member id %s)", e.member, what, e.claim.Topic, e.claim.Partition, e.gen, e.claim.gen.MemberID)
}

// startMember runs a Group member named name whose handler reports each
// claim and its end on events, and holds the claim until its context ends;
// with hold, it then returns only once hold is closed, as a handler that
// overruns its drain. The member leaves the group at the test's end.
func startMember(t *testing.T, brokers []string, group, name string, rebalance time.Duration, events chan<- claimEvent, hold <-chan struct{}) {
	t.Helper()
	g, err := NewGroup(GroupOptions{
		Kafka: KafkaConfig{Brokers: brokers, GroupID: group, ClientID: "member-" + name,
			SessionTimeout: 2 * time.Second, HeartbeatInterval: 100 * time.Millisecond, RebalanceTimeout: rebalance},
		Input: InputConfig{Topics: []string{"in"}, FetchMaxWait: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		err := g.Run(ctx, func(ctx context.Context, c *Claim) error {
			events <- claimEvent{member: name, claim: c, gen: c.gen.ID}
			<-ctx.Done()
			events <- claimEvent{member: name, claim: c, gen: c.gen.ID, ended: true}
			if hold != nil {
				<-hold
			}
			return nil
		})
		if err != nil {
			t.Errorf("member %s: Run: %v", name, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// watcher reads the claim events of a test's members.
type watcher struct {
	t      *testing.T
	ctx    context.Context
	events chan claimEvent
	seen   []claimEvent // every event so far, for the failure messages
}

func newWatcher(t *testing.T, ctx context.Context) *watcher {
	// Buffered beyond what a test makes, so that a handler never blocks.
	return &watcher{t: t, ctx: ctx, events: make(chan claimEvent, 100)}
}

// next returns the next event, or fails the test when none comes before
// the test's deadline.
func (w *watcher) next(what string) claimEvent {
	w.t.Helper()
	select {
	case e := <-w.events:
		w.seen = append(w.seen, e)
		return e
	case <-w.ctx.Done():
		w.t.Fatalf("waiting for %s: %v; events so far: %v", what, w.ctx.Err(), w.seen)
		return claimEvent{}
	}
}

// firstClaims starts member A alone in the group and returns its claims
// (of generation 1) by partition, after it committed 3 on each.
func firstClaims(t *testing.T, ctx context.Context, w *watcher, brokers []string, group string, partitions int, rebalance time.Duration, hold <-chan struct{}) map[int]claimEvent {
	t.Helper()
	startMember(t, brokers, group, "A", rebalance, w.events, hold)
	first := map[int]claimEvent{}
	for len(first) < partitions {
		e := w.next("A's first claims")
		if e.member != "A" || e.ended {
			t.Fatalf("before B joined: %v", e)
		}
		for _, f := range first {
			if f.gen != e.gen {
				t.Fatalf("A's first claims come from two generations: %v", w.seen)
			}
		}
		first[e.claim.Partition] = e
	}
	for p, e := range first {
		if err := e.claim.Commit(3); err != nil {
			t.Fatalf("A's commit in its own generation: %v", err)
		}
		if got := committed(t, ctx, brokers[0], group, p); got != 3 {
			t.Fatalf("in/%d: committed %d after A committed 3", p, got)
		}
	}
	return first
}

// newCluster starts a kfake broker with the topic "in" of partitions
// partitions, each holding 10 records, and tight group timers allowed.
func newCluster(t *testing.T, ctx context.Context, partitions int) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), "in"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	for p := range partitions {
		for i := range 10 {
			if err := produceTo(ctx, brokers[0], "in", p, kafka.Message{Value: fmt.Appendf(nil, `{"text":"doc %d"}`, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return brokers
}

// committed reads the group's committed offset of in/partition from the
// broker.
func committed(t *testing.T, ctx context.Context, broker, group string, partition int) int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{"in": {partition}}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("OffsetFetch: %v", err)
	}
	for _, p := range resp.Topics["in"] {
		if p.Partition == partition {
			if p.Error != nil {
				t.Fatalf("OffsetFetch in/%d: %v", partition, p.Error)
			}
			return p.CommittedOffset
		}
	}
	t.Fatalf("OffsetFetch: no in/%d in %+v", partition, resp.Topics)
	return 0
}

// TestLateCommitRefused is the guard of kafka-go issue #1308: a member that
// lost a partition in a rebalance and commits for it afterwards (a lower
// offset, from work it finished late) must be refused, and the new owner's
// committed offset must stay. kafka.Reader's group mode sends such a commit
// through whatever generation is current, and the coordinator takes it; a
// Claim commits through the generation that handed it out, which kafka-go
// has closed by then (with its connection).
//
// On a kfake broker over kafka-go: member A claims both partitions of "in"
// and commits 3 on each; member B joins, and the rebalance ends A's claims
// and gives B one partition (B starts at A's 3) and A the other; B commits
// 7; then A's old claim of B's partition commits 2.
func TestLateCommitRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := newCluster(t, ctx, 2)
	const group = "late-commit"
	w := newWatcher(t, ctx)
	first := firstClaims(t, ctx, w, brokers, group, 2, 2*time.Second, nil)
	genA := first[0].gen

	// B joins: the rebalance ends A's claims, and a later generation gives
	// B a partition that A held, and A the other.
	startMember(t, brokers, group, "B", 2*time.Second, w.events, nil)
	endedA := map[int]bool{}
	var claimB claimEvent
	claims := map[int32]map[string]int{} // generation → member → claims
	for {
		e := w.next("the rebalance")
		switch {
		case e.ended && e.member == "A" && e.gen == genA:
			endedA[e.claim.Partition] = true
		case !e.ended:
			if claims[e.gen] == nil {
				claims[e.gen] = map[string]int{}
			}
			claims[e.gen][e.member]++
			if e.member == "B" {
				claimB = e
			}
		}
		// Done when A's first claims have ended and B holds a partition
		// in a generation where A holds one too (one partition each).
		if len(endedA) == 2 && claimB.claim != nil && claims[claimB.gen]["A"] == 1 && claims[claimB.gen]["B"] == 1 {
			break
		}
	}
	p := claimB.claim.Partition
	t.Logf("generation %d: A held both partitions; generation %d: B holds in/%d; events: %v", genA, claimB.gen, p, w.seen)
	if claimB.gen <= genA {
		t.Fatalf("B's generation %d is not after A's %d", claimB.gen, genA)
	}
	if claimB.claim.gen.MemberID == first[p].claim.gen.MemberID {
		t.Fatalf("B has A's member id %s", claimB.claim.gen.MemberID)
	}
	if claimB.claim.Start != 3 {
		t.Fatalf("B starts in/%d at %d, not at A's committed 3", p, claimB.claim.Start)
	}
	lateCommit(t, ctx, brokers[0], group, first[p], claimB, nil)
}

// TestOverdueCommitRefusedByCoordinator: a handler that overruns the
// rebalance timeout (a drain longer than the group allows) keeps its
// generation, and that generation's connection, open while the coordinator
// expels its member and hands the partition to another. A commit from it
// then reaches the coordinator, which refuses it for its generation and
// member id (UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION).
//
// On a kfake broker over kafka-go: member A claims the one partition and
// commits 3; B joins; A's claim ends but its handler does not return, so A
// never rejoins, and after the rebalance timeout B alone holds the
// partition (starting at A's 3); B commits 7; then A's claim commits 2.
func TestOverdueCommitRefusedByCoordinator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := newCluster(t, ctx, 1)
	const group = "overdue-commit"
	w := newWatcher(t, ctx)
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	defer release() // before the members leave (t.Cleanup)
	const rebalance = 500 * time.Millisecond
	first := firstClaims(t, ctx, w, brokers, group, 1, rebalance, hold)
	genA := first[0].gen

	startMember(t, brokers, group, "B", rebalance, w.events, nil)
	var endedA bool
	var claimB claimEvent
	for !endedA || claimB.claim == nil {
		e := w.next("the rebalance")
		switch {
		case e.member == "A" && e.ended && e.gen == genA:
			endedA = true
		case e.member == "A":
			t.Fatalf("A, whose handler has not returned, took part in another generation: %v", w.seen)
		case e.member == "B" && !e.ended:
			claimB = e
		}
	}
	t.Logf("generation %d: A held in/0; generation %d: B holds it; events: %v", genA, claimB.gen, w.seen)
	if claimB.gen <= genA {
		t.Fatalf("B's generation %d is not after A's %d", claimB.gen, genA)
	}
	if claimB.claim.Start != 3 {
		t.Fatalf("B starts in/0 at %d, not at A's committed 3", claimB.claim.Start)
	}
	lateCommit(t, ctx, brokers[0], group, first[0], claimB, []error{kafka.UnknownMemberId, kafka.IllegalGeneration})
}

// lateCommit has the new owner commit 7, then the old claim commit 2: the
// old one must fail (with one of want, when given) and leave 7 committed.
func lateCommit(t *testing.T, ctx context.Context, broker, group string, old, owner claimEvent, want []error) {
	t.Helper()
	p := owner.claim.Partition
	if err := owner.claim.Commit(7); err != nil {
		t.Fatalf("B's commit in its own generation: %v", err)
	}
	if got := committed(t, ctx, broker, group, p); got != 7 {
		t.Fatalf("in/%d: committed %d after B committed 7", p, got)
	}
	err := old.claim.Commit(2)
	switch {
	case err == nil:
		t.Errorf("A's late commit of in/%d@2 from generation %d was accepted after B's generation %d", p, old.gen, owner.gen)
	case want != nil && !slices.ContainsFunc(want, func(w error) bool { return errors.Is(err, w) }):
		t.Errorf("A's late commit failed with %v; want the coordinator's refusal, one of %v", err, want)
	default:
		t.Logf("A's late commit: %v", err)
	}
	if got := committed(t, ctx, broker, group, p); got != 7 {
		t.Errorf("in/%d: committed %d after A's late commit of 2; B's 7 must stay", p, got)
	}
}
