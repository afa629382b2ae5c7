package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/producers"
)

// The crash phase of `nerstream bench scale` (group bench-scale-crash)
// measures what a member that dies costs: CrashMembers members consume
// the backlog; in each of CrashRounds rounds one member that holds
// partitions is killed by SIGKILL (no drain, no last commit, no leave),
// so the coordinator notices only when its session times out
// (CrashSession, the members' kafka.session_timeout). Recovery runs from
// the kill to the group stable without it, every partition assigned and
// each of its partitions committed past where it was at the kill: the
// survivors have taken them over and produce for them. A fresh member
// then joins in its place (rejoin, from its start to the group stable
// and consuming with every member), so every round starts from the same
// count.
//
// Once the rounds are over, the members stop gracefully and the output
// and dead-letter topics are read back, from where they ended when the
// phase started: every output names its input record (source partition
// and offset). Duplicates are the outputs of an input record beyond its
// first, each counted in the round in whose span (from its kill to the
// next kill) it was written; lost are the input records below the
// group's final committed offsets that have no output at all.

// MinCrashSession is the shortest session timeout the crash phase's
// members may have; the benchmark's broker accepts it (a stock Kafka
// broker's floor, group.min.session.timeout.ms, is 6 s).
const MinCrashSession = 500 * time.Millisecond

// The crash phase's group and its members' client ids.
const (
	crashGroup    = scaleGroupPrefix + "crash"
	crashClientID = "bench-crash-"
)

// ScaleCrash is the crash phase's figures.
type ScaleCrash struct {
	Members int `json:"members"`
	Rounds  int `json:"rounds"`
	// SessionTimeoutMS and HeartbeatMS are the members' Kafka settings;
	// MaxInFlight their batch.max_in_flight, which bounds the records a
	// member has fetched and not committed, so what a crash can make
	// the next owner redo.
	SessionTimeoutMS float64 `json:"session_timeout_ms"`
	HeartbeatMS      float64 `json:"heartbeat_ms"`
	MaxInFlight      int     `json:"max_in_flight"`
	// The medians over the rounds; DuplicatesMax the most of one round.
	ExpelledMSMedian float64 `json:"expelled_ms_median"`
	RecoveryMSMedian float64 `json:"recovery_ms_median"`
	RejoinMSMedian   float64 `json:"rejoin_ms_median"`
	DuplicatesMedian float64 `json:"duplicates_per_crash_median"`
	DuplicatesMax    int64   `json:"duplicates_per_crash_max"`
	// DuplicatesBefore is the duplicates written before the first kill
	// (by the members' first join).
	DuplicatesBefore int64 `json:"duplicates_before_first_kill"`
	// Outputs and DeadLetters are the phase's records on the output and
	// dead-letter topics; UniqueInputs the input records they name.
	Outputs      int64 `json:"output_records"`
	DeadLetters  int64 `json:"dead_letters"`
	UniqueInputs int64 `json:"unique_inputs"`
	// Committed is the input records below the group's final committed
	// offsets, Lost those of them with no output (0, or a bug).
	Committed int64 `json:"committed_inputs"`
	Lost      int64 `json:"lost"`
	// Kills are the rounds, in order.
	Kills []ScaleKill `json:"kills"`
}

// ScaleKill is one round of the crash phase.
type ScaleKill struct {
	// Victim is the killed member's client id, Partitions what it held.
	Victim     string `json:"victim"`
	Partitions []int  `json:"partitions"`
	// Exit is how the process ended, as its wait status reads;
	// SIGKILL is whether that was SIGKILL.
	Exit    string `json:"exit"`
	SIGKILL bool   `json:"sigkill"`
	// TakenBy is which survivors (client ids) hold the victim's
	// partitions once recovered.
	TakenBy map[string][]int `json:"taken_by"`
	// ExpelledMS is from the kill to the coordinator first listing the
	// group without the victim (its session timing out); RecoveryMS to
	// the survivors committing on all its partitions; RejoinMS from a
	// fresh member's start to the group consuming with it.
	ExpelledMS float64 `json:"expelled_ms"`
	RecoveryMS float64 `json:"recovery_ms"`
	RejoinMS   float64 `json:"rejoin_ms"`
	// Duplicates is the outputs written in this round's span for input
	// records that already had one.
	Duplicates int64 `json:"duplicates"`
}

// crashMember is a member process of the crash phase and its client id.
type crashMember struct {
	*member
	id string
}

// crash runs the crash phase with n members and rounds kills.
func (s *scaler) crash(ctx context.Context, n, rounds int, session time.Duration) (*ScaleCrash, error) {
	outStart, err := bpEndOffsets(ctx, s.cl, bpOutTopic, s.o.Partitions)
	if err != nil {
		return nil, err
	}
	dlqStart, err := bpEndOffsets(ctx, s.cl, bpDeadTopic, s.o.Partitions)
	if err != nil {
		return nil, err
	}
	var mems []crashMember
	procs := func() []*member {
		ps := make([]*member, len(mems))
		for i, m := range mems {
			ps[i] = m.member
		}
		return ps
	}
	defer func() { stopMembers(procs()) }()
	started := 0
	start := func() error {
		id := crashClientID + strconv.Itoa(started)
		m, err := s.startMemberAs(crashGroup, id, session)
		if err != nil {
			return err
		}
		started++
		mems = append(mems, crashMember{m, id})
		return nil
	}
	for range n {
		if err := start(); err != nil {
			return nil, err
		}
	}
	if _, err := s.waitConsuming(ctx, crashGroup, n, procs()); err != nil {
		return nil, err
	}
	res := &ScaleCrash{Members: n, Rounds: rounds, SessionTimeoutMS: ms(session), HeartbeatMS: ms(scaleMemberHeartbeat),
		MaxInFlight: memberMaxInFlight(s.o.MaxDocs)}
	var marks []map[int]int64 // the output topic's end at each kill
	for r := range rounds {
		k, mark, err := s.killOne(ctx, &mems, r)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
		marks = append(marks, mark)
		t := time.Now()
		if err := start(); err != nil {
			return nil, err
		}
		if _, err := s.waitConsuming(ctx, crashGroup, n, procs()); err != nil {
			return nil, fmt.Errorf("round %d, after a rejoin: %w", r+1, err)
		}
		k.RejoinMS = ms(time.Since(t))
		fmt.Fprintf(s.o.Stderr, "bench scale: crash %d: %s expelled after %.0f ms, recovered after %.0f ms, rejoin %.0f ms\n",
			r+1, k.Victim, k.ExpelledMS, k.RecoveryMS, k.RejoinMS)
		res.Kills = append(res.Kills, k)
	}
	failed := stopMembers(procs())
	mems = nil
	if failed > 0 {
		return nil, fmt.Errorf("%d members exited with an error", failed)
	}
	committed, err := s.committed(ctx, crashGroup)
	if err != nil {
		return nil, err
	}
	outEnd, err := bpEndOffsets(ctx, s.cl, bpOutTopic, s.o.Partitions)
	if err != nil {
		return nil, err
	}
	dlqEnd, err := bpEndOffsets(ctx, s.cl, bpDeadTopic, s.o.Partitions)
	if err != nil {
		return nil, err
	}
	copies := map[inputRecord][]outputRecord{}
	err = readRange(ctx, s.addr, bpOutTopic, outStart, outEnd, func(p int, m kafka.Message) error {
		in, err := annotationSource(m.Value)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: %w", bpOutTopic, p, m.Offset, err)
		}
		copies[in] = append(copies[in], outputRecord{p, m.Offset})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readRange(ctx, s.addr, bpDeadTopic, dlqStart, dlqEnd, func(p int, m kafka.Message) error {
		in, err := deadLetterSource(m.Headers)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: %w", bpDeadTopic, p, m.Offset, err)
		}
		res.DeadLetters++
		// A dead letter is not on the output topic: it counts in the
		// span before every kill, which only affects its duplicates'
		// attribution, never whether the record has an output.
		copies[in] = append(copies[in], outputRecord{p, -1})
		return nil
	})
	if err != nil {
		return nil, err
	}
	t := tallyCrash(copies, marks, committed)
	res.Outputs = t.outputs - res.DeadLetters
	res.UniqueInputs, res.Committed, res.Lost, res.DuplicatesBefore = t.unique, t.committed, t.lost, t.perSpan[0]
	dups := make([]float64, rounds)
	exp, rec, rej := make([]float64, rounds), make([]float64, rounds), make([]float64, rounds)
	for i := range res.Kills {
		k := &res.Kills[i]
		k.Duplicates = t.perSpan[i+1]
		dups[i], exp[i], rec[i], rej[i] = float64(k.Duplicates), k.ExpelledMS, k.RecoveryMS, k.RejoinMS
		res.DuplicatesMax = max(res.DuplicatesMax, k.Duplicates)
	}
	res.DuplicatesMedian, res.ExpelledMSMedian, res.RecoveryMSMedian, res.RejoinMSMedian = median(dups), median(exp), median(rec), median(rej)
	return res, nil
}

// killOne kills, by SIGKILL, the member of *mems that round r picks among
// those holding partitions, removes it from *mems, and waits until the
// survivors have taken its partitions over. It returns the round's
// figures and the output topic's end offsets just before the kill.
func (s *scaler) killOne(ctx context.Context, mems *[]crashMember, r int) (ScaleKill, map[int]int64, error) {
	_, held, err := s.assignment(ctx, crashGroup)
	if err != nil {
		return ScaleKill{}, nil, err
	}
	var holders []int
	for i, m := range *mems {
		if len(held[m.id]) > 0 {
			holders = append(holders, i)
		}
	}
	if len(holders) == 0 {
		return ScaleKill{}, nil, errors.New("no member holds a partition")
	}
	vi := holders[r%len(holders)]
	victim := (*mems)[vi]
	k := ScaleKill{Victim: victim.id, Partitions: held[victim.id]}
	base, err := s.committed(ctx, crashGroup)
	if err != nil {
		return k, nil, err
	}
	for _, p := range k.Partitions {
		if base[p] >= s.end[p] {
			return k, nil, fmt.Errorf("partition %d reached the end of the backlog: raise --docs", p)
		}
	}
	mark, err := bpEndOffsets(ctx, s.cl, bpOutTopic, s.o.Partitions)
	if err != nil {
		return k, nil, err
	}
	t := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return k, nil, fmt.Errorf("killing %s: %w", victim.id, err)
	}
	<-victim.exited
	k.Exit, k.SIGKILL = exitStatus(victim.err)
	*mems = slices.Delete(*mems, vi, vi+1)
	survivors := make([]*member, len(*mems))
	for i, m := range *mems {
		survivors[i] = m.member
	}
	deadline := time.Now().Add(s.o.Timeout)
	tick := time.NewTicker(s.o.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return k, nil, context.Cause(ctx)
		case <-tick.C:
		}
		if err := checkAlive(survivors); err != nil {
			return k, nil, err
		}
		if time.Now().After(deadline) {
			return k, nil, fmt.Errorf("the survivors did not take over %s's partitions %v within %v", k.Victim, k.Partitions, s.o.Timeout)
		}
		state, now, err := s.assignment(ctx, crashGroup)
		if err != nil {
			continue
		}
		if _, listed := now[k.Victim]; listed || state == "" {
			continue
		}
		if k.ExpelledMS == 0 {
			k.ExpelledMS = ms(time.Since(t))
		}
		owner := map[int]string{}
		for id, ps := range now {
			for _, p := range ps {
				owner[p] = id
			}
		}
		if state != "Stable" || len(now) != len(*mems) || len(owner) != len(s.end) {
			continue
		}
		c, err := s.committed(ctx, crashGroup)
		if err != nil {
			continue
		}
		done := true
		for _, p := range k.Partitions {
			done = done && c[p] > base[p]
		}
		if !done {
			continue
		}
		k.RecoveryMS = ms(time.Since(t))
		k.TakenBy = map[string][]int{}
		for _, p := range k.Partitions {
			k.TakenBy[owner[p]] = append(k.TakenBy[owner[p]], p)
		}
		return k, mark, nil
	}
}

// exitStatus says how a member process ended, from its Wait error, and
// whether SIGKILL ended it.
func exitStatus(err error) (string, bool) {
	if err == nil {
		return "exit status 0", false
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err.Error(), false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ee.String(), ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// assignment reads the group's state and each member's input partitions
// by client id ("" and nil while the group is not described).
func (s *scaler) assignment(ctx context.Context, group string) (string, map[string][]int, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.cl.DescribeGroups(rctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return "", nil, err
	}
	if len(resp.Groups) != 1 || resp.Groups[0].Error != nil {
		return "", nil, nil
	}
	g := resp.Groups[0]
	held := map[string][]int{}
	for _, m := range g.Members {
		ps := []int{} // listed, even with no partition
		for _, t := range m.MemberAssignments.Topics {
			if t.Topic == bpInputTopic {
				ps = append(ps, t.Partitions...)
			}
		}
		slices.Sort(ps)
		held[m.ClientID] = ps
	}
	return g.GroupState, held, nil
}

// memberMaxInFlight is the batch.max_in_flight of a bench member.
func memberMaxInFlight(maxDocs int) int {
	return max(config.Default().Batch.MaxInFlight, 4*maxDocs)
}

// inputRecord is one input record; outputRecord where one of its outputs
// was written (offset -1: a dead letter).
type (
	inputRecord  struct{ partition, offset int64 }
	outputRecord struct {
		partition int
		offset    int64
	}
)

// annotationSource is the input record an annotation names.
func annotationSource(v []byte) (inputRecord, error) {
	var a struct {
		Source struct {
			Topic     string `json:"topic"`
			Partition *int64 `json:"partition"`
			Offset    *int64 `json:"offset"`
		} `json:"source"`
	}
	if err := json.Unmarshal(v, &a); err != nil {
		return inputRecord{}, fmt.Errorf("an output is not an annotation: %w", err)
	}
	if a.Source.Topic != bpInputTopic || a.Source.Partition == nil || a.Source.Offset == nil {
		return inputRecord{}, fmt.Errorf("an output names no input record of %s: %.200s", bpInputTopic, v)
	}
	return inputRecord{*a.Source.Partition, *a.Source.Offset}, nil
}

// deadLetterSource is the input record a dead letter's headers name.
func deadLetterSource(hs []kafka.Header) (inputRecord, error) {
	var in inputRecord
	got := 0
	for _, h := range hs {
		var err error
		switch h.Key {
		case producers.HeaderSourcePartition:
			in.partition, err = strconv.ParseInt(string(h.Value), 10, 64)
			got++
		case producers.HeaderSourceOffset:
			in.offset, err = strconv.ParseInt(string(h.Value), 10, 64)
			got++
		}
		if err != nil {
			return in, fmt.Errorf("a dead letter's %s header: %w", h.Key, err)
		}
	}
	if got != 2 {
		return in, errors.New("a dead letter names no input record")
	}
	return in, nil
}

// crashTally is what [tallyCrash] counts.
type crashTally struct {
	outputs, unique, committed, lost int64
	// perSpan[0] is the duplicates written before the first mark,
	// perSpan[i] those from mark i-1 on.
	perSpan []int64
}

// tallyCrash counts copies (each input record's outputs): an input's
// outputs beyond its first are duplicates, each counted in the span of
// marks (output end offsets, ascending) where it lies; an input record
// below committed (the next offset to read, per input partition) with no
// output is lost.
func tallyCrash(copies map[inputRecord][]outputRecord, marks []map[int]int64, committed map[int]int64) crashTally {
	t := crashTally{perSpan: make([]int64, len(marks)+1)}
	span := func(o outputRecord) int {
		i := 0
		for i < len(marks) && o.offset >= marks[i][o.partition] {
			i++
		}
		return i
	}
	for _, outs := range copies {
		t.outputs += int64(len(outs))
		t.unique++
		spans := make([]int, len(outs))
		for i, o := range outs {
			spans[i] = span(o)
		}
		slices.Sort(spans)
		for _, sp := range spans[1:] {
			t.perSpan[sp]++
		}
	}
	for p, c := range committed {
		for off := int64(0); off < c; off++ {
			t.committed++
			if len(copies[inputRecord{int64(p), off}]) == 0 {
				t.lost++
			}
		}
	}
	return t
}

// readRange reads topic from start to end on every partition and gives
// each record to fn.
func readRange(ctx context.Context, addr, topic string, start, end map[int]int64, fn func(partition int, m kafka.Message) error) error {
	for p, e := range end {
		if e <= start[p] {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		err := r.SetOffset(start[p])
		for off := start[p]; err == nil && off < e; {
			var m kafka.Message
			if m, err = r.ReadMessage(ctx); err != nil {
				err = fmt.Errorf("reading %s/%d: %w", topic, p, err)
				break
			}
			err = fn(p, m)
			off = m.Offset + 1
		}
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
