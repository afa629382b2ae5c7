package main

import (
	"testing"
	"time"
)

// TestStreamManyDocsTwoMembers: 10,000 documents through 6 partitions and 2
// group members. Every id reaches the output, and the committed offsets end
// at the log end.
func TestStreamManyDocsTwoMembers(t *testing.T) {
	const n = 10000
	c := startBroker(t, 6)
	brokers := c.ListenAddrs()
	produceDocs(t, brokers, 0, n)
	cfg := streamConfig(brokers)
	r1, r2 := &instantRecognizer{}, &instantRecognizer{}
	runMember(t, cfg, r1, "a")
	runMember(t, cfg, r2, "b")
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 60*time.Second)
	dups := checkAllIDs(t, annotationIDs(t, brokers), n)
	t.Logf("members saw %d and %d documents; %d duplicates", r1.docs, r2.docs, dups)
	if r1.docs == 0 || r2.docs == 0 {
		t.Errorf("one member did all the work (%d, %d): the group did not share the partitions", r1.docs, r2.docs)
	}
}
