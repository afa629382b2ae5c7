package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/stream"
)

// `nerstream bench scale` measures how throughput grows with the members
// of one consumer group, each a separate process (`nerstream bench member`,
// hidden), on the embedded broker of bench pipeline (a child process too).
// The members' model is [sleepRecognizer], a test double that sleeps a
// fixed time per batch and finds nothing, as a remote GPU server would
// make a member wait: the members mostly wait, so that the 2-core machine
// that runs them all is not what limits them.
//
// For each member count N, a fresh group (bench-scale-N) starts N members
// at once over the same backlog; once the coordinator reports the group
// stable with N members and every partition assigned, and every partition
// has committed past where it was then (consuming), the committed offsets
// are read at the start and the end of a fixed window: docs/s is their
// growth over the window. Members beyond the partitions get nothing and
// must idle; the run fails if any member exits with an error.
//
// The rebalance phase (group bench-scale-rebalance) starts
// --rebalance-members members, waits until they consume, then starts one
// more (join) and later stops one (leave, a graceful shutdown, as a
// Kubernetes scale-down does). Each rebalance's time runs from the event
// to the group stable again with every partition assigned and every
// partition committed past where it was at that moment. Duplicates are
// the output records of the phase beyond one per input document (keys are
// document ids): what the rebalances made members process twice.
//
// The crash phase (see scalecrash.go) kills members by SIGKILL instead.

// The scale benchmark's group prefix.
const scaleGroupPrefix = "bench-scale-"

// ScaleOptions are the settings of [Scale] (the flags of `nerstream bench
// scale`).
type ScaleOptions struct {
	// Partitions of the input topic; Members, the member counts to
	// measure, in order.
	Partitions int
	Members    []int
	// Docs is the backlog, which every group reads from its start; it
	// must outlast the busiest phase.
	Docs, DocBytes int
	// Latency is the model's time per batch, MaxDocs the batch size.
	Latency time.Duration
	MaxDocs int
	// Window is how long each member count is measured once consuming.
	Window time.Duration
	// RebalanceMembers is how many members the rebalance phase starts
	// with, before one joins and one leaves; 0 skips the phase.
	RebalanceMembers int
	// CrashMembers is how many members the crash phase runs (0 skips
	// it), CrashRounds how many of them it kills, one after another,
	// and CrashSession their kafka.session_timeout, which the
	// coordinator waits before it expels a killed member.
	CrashMembers, CrashRounds int
	CrashSession              time.Duration
	// Timeout bounds each wait (a group getting stable, a phase).
	Timeout, Poll time.Duration
	// Stderr receives the child processes' errors and progress lines.
	Stderr io.Writer
}

// ScaleResult is what `nerstream bench scale` prints.
type ScaleResult struct {
	Partitions int     `json:"partitions"`
	Docs       int     `json:"docs"`
	DocBytes   int     `json:"doc_bytes"`
	LatencyMS  float64 `json:"model_latency_ms"`
	MaxDocs    int     `json:"max_docs"`
	WindowS    float64 `json:"window_s"`
	NumCPU     int     `json:"num_cpu"`
	// Points are the member counts' figures, in order.
	Points []ScalePoint `json:"points"`
	// Rebalance is the join and leave figures (absent with
	// RebalanceMembers 0).
	Rebalance *ScaleRebalance `json:"rebalance,omitempty"`
	// Crash is the crash phase's figures (absent with CrashMembers 0).
	Crash *ScaleCrash `json:"crash,omitempty"`
	// EfficiencyMinUpToP is the lowest efficiency of the points with
	// N <= partitions.
	EfficiencyMinUpToP float64 `json:"efficiency_min_up_to_p"`
	TotalS             float64 `json:"total_s"`
}

// ScalePoint is one member count's figures.
type ScalePoint struct {
	Members int `json:"members"`
	// DocsPerS is the committed offsets' growth over the window.
	DocsPerS float64 `json:"docs_per_s"`
	// Efficiency is DocsPerS / (Members × the first point's DocsPerS
	// per member).
	Efficiency float64 `json:"efficiency"`
	// ReadyMS is from starting the members to the group consuming.
	ReadyMS float64 `json:"ready_ms"`
	// Assigned is the members that the coordinator gave partitions,
	// Idle those it gave none (Members beyond Partitions).
	Assigned int `json:"assigned_members"`
	Idle     int `json:"idle_members"`
	// Failed is the members that exited with an error (the run fails
	// when it is not 0, so it shows 0).
	Failed int `json:"failed_members"`
}

// ScaleRebalance is the rebalance phase's figures.
type ScaleRebalance struct {
	Members    int     `json:"members_before_join"`
	JoinMS     float64 `json:"join_ms"`
	LeaveMS    float64 `json:"leave_ms"`
	Outputs    int64   `json:"output_records"`
	UniqueDocs int64   `json:"unique_docs"`
	Duplicates int64   `json:"duplicates"`
	MaxCopies  int64   `json:"max_copies_of_one_doc"`
}

// Scale runs the benchmark (see the file's comment). Both the broker and
// the members are this executable re-executed (`bench broker`, `bench
// member`), which must answer as [RunBroker] and [RunMember].
func Scale(ctx context.Context, o ScaleOptions) (*ScaleResult, error) {
	if o.Partitions <= 0 || len(o.Members) == 0 || o.Docs <= 0 || o.DocBytes < 40 || o.Latency < 0 || o.MaxDocs <= 0 ||
		o.Window <= 0 || o.RebalanceMembers < 0 || o.Timeout <= 0 || o.Poll <= 0 {
		return nil, fmt.Errorf("%w: partitions, members, docs, max docs, window, timeout and poll must be > 0, latency and rebalance members >= 0, doc bytes >= 40", ErrOptions)
	}
	for _, n := range o.Members {
		if n <= 0 || n > MaxScaleMembers {
			return nil, fmt.Errorf("%w: member counts must be within 1..%d", ErrOptions, MaxScaleMembers)
		}
	}
	if o.RebalanceMembers+1 > MaxScaleMembers {
		return nil, fmt.Errorf("%w: rebalance members must be below %d", ErrOptions, MaxScaleMembers)
	}
	if o.CrashMembers < 0 || o.CrashMembers > MaxScaleMembers || o.CrashMembers == 1 ||
		(o.CrashMembers > 0 && (o.CrashRounds <= 0 || o.CrashSession < MinCrashSession)) {
		return nil, fmt.Errorf("%w: crash members must be 0 or within 2..%d (a survivor must take over), with crash rounds > 0 and a crash session timeout >= %v",
			ErrOptions, MaxScaleMembers, MinCrashSession)
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	start := time.Now()
	broker, err := startBenchBroker(benchBrokerOptions{partitions: o.Partitions, docs: o.Docs, docBytes: o.DocBytes}, o.Stderr)
	if err != nil {
		return nil, err
	}
	defer broker.stop()
	ctx, cancel := broker.bound(ctx)
	defer cancel(nil)
	cl := &kafka.Client{Addr: kafka.TCP(broker.addr), Timeout: 10 * time.Second, Transport: &kafka.Transport{ClientID: "nerstream-bench"}}
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	end, err := bpEndOffsets(ctx, cl, bpInputTopic, o.Partitions)
	if err != nil {
		return nil, err
	}
	sc := &scaler{o: o, cl: cl, addr: broker.addr, end: end}
	res := &ScaleResult{Partitions: o.Partitions, Docs: o.Docs, DocBytes: o.DocBytes, LatencyMS: ms(o.Latency),
		MaxDocs: o.MaxDocs, WindowS: o.Window.Seconds(), NumCPU: runtime.NumCPU()}
	for _, n := range o.Members {
		p, err := sc.point(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("%d members: %w", n, err)
		}
		fmt.Fprintf(o.Stderr, "bench scale: %d members: %.0f docs/s\n", n, p.DocsPerS)
		res.Points = append(res.Points, p)
	}
	perMember := res.Points[0].DocsPerS / float64(res.Points[0].Members)
	res.EfficiencyMinUpToP = -1
	for i := range res.Points {
		p := &res.Points[i]
		if perMember > 0 {
			p.Efficiency = p.DocsPerS / (float64(p.Members) * perMember)
		}
		if p.Members <= o.Partitions && (res.EfficiencyMinUpToP < 0 || p.Efficiency < res.EfficiencyMinUpToP) {
			res.EfficiencyMinUpToP = p.Efficiency
		}
	}
	res.EfficiencyMinUpToP = max(res.EfficiencyMinUpToP, 0)
	if o.RebalanceMembers > 0 {
		rb, err := sc.rebalance(ctx, o.RebalanceMembers)
		if err != nil {
			return nil, fmt.Errorf("rebalance phase: %w", err)
		}
		res.Rebalance = rb
	}
	if o.CrashMembers > 0 {
		c, err := sc.crash(ctx, o.CrashMembers, o.CrashRounds, o.CrashSession)
		if err != nil {
			return nil, fmt.Errorf("crash phase: %w", err)
		}
		res.Crash = c
	}
	res.TotalS = time.Since(start).Seconds()
	return res, nil
}

// MaxScaleMembers bounds the member processes of one phase.
const MaxScaleMembers = 64

type scaler struct {
	o    ScaleOptions
	cl   *kafka.Client
	addr string
	end  map[int]int64
}

// point measures n members in a group of their own.
func (s *scaler) point(ctx context.Context, n int) (ScalePoint, error) {
	group := scaleGroupPrefix + strconv.Itoa(n)
	t0 := time.Now()
	mems := make([]*member, 0, n)
	defer func() { stopMembers(mems) }()
	for range n {
		m, err := s.startMember(group)
		if err != nil {
			return ScalePoint{}, err
		}
		mems = append(mems, m)
	}
	assigned, err := s.waitConsuming(ctx, group, n, mems)
	if err != nil {
		return ScalePoint{}, err
	}
	p := ScalePoint{Members: n, ReadyMS: ms(time.Since(t0)), Assigned: assigned, Idle: n - assigned}
	c0, err := s.committed(ctx, group)
	if err != nil {
		return p, err
	}
	w0 := time.Now()
	select {
	case <-ctx.Done():
		return p, context.Cause(ctx)
	case <-time.After(s.o.Window):
	}
	c1, err := s.committed(ctx, group)
	el := time.Since(w0)
	if err != nil {
		return p, err
	}
	for q, e := range s.end {
		if c1[q] >= e {
			return p, fmt.Errorf("partition %d reached the end of the backlog within the window: raise --docs", q)
		}
	}
	p.DocsPerS = float64(sum(c1)-sum(c0)) / el.Seconds()
	if err := checkAlive(mems); err != nil {
		return p, err
	}
	p.Failed = stopMembers(mems)
	mems = nil
	if p.Failed > 0 {
		return p, fmt.Errorf("%d of %d members exited with an error", p.Failed, n)
	}
	return p, nil
}

// rebalance runs the join and leave phase with n members to begin with.
func (s *scaler) rebalance(ctx context.Context, n int) (*ScaleRebalance, error) {
	group := scaleGroupPrefix + "rebalance"
	outStart, err := bpEndOffsets(ctx, s.cl, bpOutTopic, s.o.Partitions)
	if err != nil {
		return nil, err
	}
	mems := make([]*member, 0, n+1)
	defer func() { stopMembers(mems) }()
	for range n {
		m, err := s.startMember(group)
		if err != nil {
			return nil, err
		}
		mems = append(mems, m)
	}
	if _, err := s.waitConsuming(ctx, group, n, mems); err != nil {
		return nil, err
	}
	rb := &ScaleRebalance{Members: n}
	t := time.Now()
	m, err := s.startMember(group)
	if err != nil {
		return nil, err
	}
	mems = append(mems, m)
	if _, err := s.waitConsuming(ctx, group, n+1, mems); err != nil {
		return nil, fmt.Errorf("after a join: %w", err)
	}
	rb.JoinMS = ms(time.Since(t))
	t = time.Now()
	leaving := mems[0]
	mems = mems[1:]
	if failed := stopMembers([]*member{leaving}); failed > 0 {
		return nil, errors.New("the leaving member exited with an error")
	}
	if _, err := s.waitConsuming(ctx, group, n, mems); err != nil {
		return nil, fmt.Errorf("after a leave: %w", err)
	}
	rb.LeaveMS = ms(time.Since(t))
	if failed := stopMembers(mems); failed > 0 {
		mems = nil
		return nil, fmt.Errorf("%d members exited with an error", failed)
	}
	mems = nil
	outEnd, err := bpEndOffsets(ctx, s.cl, bpOutTopic, s.o.Partitions)
	if err != nil {
		return nil, err
	}
	counts, err := countKeys(ctx, s.addr, bpOutTopic, outStart, outEnd)
	if err != nil {
		return nil, err
	}
	d := duplicateStats(counts)
	rb.Outputs, rb.UniqueDocs, rb.Duplicates, rb.MaxCopies = d.Outputs, d.UniqueDocs, d.Duplicates, d.MaxCopies
	return rb, nil
}

// dupStats are the output records per document.
type dupStats struct{ Outputs, UniqueDocs, Duplicates, MaxCopies int64 }

// duplicateStats sums counts (records per key): the records beyond one per
// key are duplicates.
func duplicateStats(counts map[string]int64) dupStats {
	var d dupStats
	for _, c := range counts {
		d.Outputs += c
		d.UniqueDocs++
		d.MaxCopies = max(d.MaxCopies, c)
	}
	d.Duplicates = d.Outputs - d.UniqueDocs
	return d
}

// countKeys reads topic from start to end on every partition and counts
// the records per key.
func countKeys(ctx context.Context, addr, topic string, start, end map[int]int64) (map[string]int64, error) {
	counts := map[string]int64{}
	err := readRange(ctx, addr, topic, start, end, func(_ int, m kafka.Message) error {
		counts[string(m.Key)]++
		return nil
	})
	return counts, err
}

// waitConsuming waits until the group is stable with n members and every
// partition assigned, and then until every partition has committed past
// where it was then. It returns how many members hold partitions.
func (s *scaler) waitConsuming(ctx context.Context, group string, n int, ms []*member) (int, error) {
	deadline := time.Now().Add(s.o.Timeout)
	tick := time.NewTicker(s.o.Poll)
	defer tick.Stop()
	var (
		base     map[int]int64
		assigned int
	)
	for {
		select {
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		case <-tick.C:
		}
		if err := checkAlive(ms); err != nil {
			return 0, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("group %s not stable and consuming with %d members within %v", group, n, s.o.Timeout)
		}
		if base == nil {
			a, ok, err := s.stable(ctx, group, n)
			if err != nil || !ok {
				continue
			}
			if base, err = s.committed(ctx, group); err != nil {
				base = nil
				continue
			}
			assigned = a
			continue
		}
		c, err := s.committed(ctx, group)
		if err != nil {
			continue
		}
		done := true
		for p := range s.end {
			if c[p] <= base[p] {
				done = false
			}
		}
		if done {
			return assigned, nil
		}
	}
}

// stable reports whether the group is stable with n members and every
// partition of the input assigned, and how many members hold partitions.
func (s *scaler) stable(ctx context.Context, group string, n int) (int, bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.cl.DescribeGroups(rctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return 0, false, err
	}
	if len(resp.Groups) != 1 || resp.Groups[0].Error != nil {
		return 0, false, nil
	}
	g := resp.Groups[0]
	if g.GroupState != "Stable" || len(g.Members) != n {
		return 0, false, nil
	}
	seen := map[int]bool{}
	assigned := 0
	for _, m := range g.Members {
		held := false
		for _, t := range m.MemberAssignments.Topics {
			if t.Topic != bpInputTopic {
				continue
			}
			for _, p := range t.Partitions {
				seen[p], held = true, true
			}
		}
		if held {
			assigned++
		}
	}
	return assigned, len(seen) == len(s.end), nil
}

// committed reads the group's committed offsets on the input.
func (s *scaler) committed(ctx context.Context, group string) (map[int]int64, error) {
	ps := make([]int, 0, len(s.end))
	for p := range s.end {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.cl.OffsetFetch(rctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{bpInputTopic: ps}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[bpInputTopic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = max(p.CommittedOffset, 0) // -1: none yet
	}
	return out, nil
}

func sum(m map[int]int64) int64 {
	var t int64
	for _, v := range m {
		t += v
	}
	return t
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// member is one member process.
type member struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	err    error // set before exited closes
}

// startMember re-executes this binary as `bench member` in group.
func (s *scaler) startMember(group string) (*member, error) {
	return s.startMemberAs(group, "", 0)
}

// startMemberAs is [scaler.startMember] with a client id and a session
// timeout (the member's defaults where empty or 0).
func (s *scaler) startMemberAs(group, clientID string, session time.Duration) (*member, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable: %w", err)
	}
	args := []string{"bench", "member", "--broker", s.addr, "--group", group,
		"--latency", s.o.Latency.String(), "--max-docs", strconv.Itoa(s.o.MaxDocs)}
	if clientID != "" {
		args = append(args, "--client-id", clientID)
	}
	if session > 0 {
		args = append(args, "--session-timeout", session.String())
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = s.o.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a member process: %w", err)
	}
	m := &member{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	go func() { m.err = cmd.Wait(); close(m.exited) }()
	return m, nil
}

// checkAlive fails when a member has exited.
func checkAlive(ms []*member) error {
	for _, m := range ms {
		select {
		case <-m.exited:
			return fmt.Errorf("a member process exited early: %v", m.err)
		default:
		}
	}
	return nil
}

// stopMembers closes every member's stdin, which shuts it down gracefully
// (it leaves the group), waits for them, and returns how many exited with
// an error. One that lingers past the shutdown is killed and counts.
func stopMembers(ms []*member) int {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for _, m := range ms {
		m.stdin.Close()
		wg.Go(func() {
			select {
			case <-m.exited:
			case <-time.After(scaleMemberShutdown + 10*time.Second):
				_ = m.cmd.Process.Kill()
				<-m.exited
			}
			if m.err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// The members' consumer-group and shutdown settings: quick to notice a
// rebalance, and a graceful stop well within the rebalance timeout.
const (
	scaleMemberHeartbeat = 200 * time.Millisecond
	scaleMemberRebalance = 10 * time.Second
	scaleMemberShutdown  = 5 * time.Second
)

// MemberOptions are the settings of [RunMember] (the flags of `nerstream
// bench member`).
type MemberOptions struct {
	Broker, Group string
	Latency       time.Duration
	MaxDocs       int
	// SessionTimeout is the member's kafka.session_timeout, at least
	// [MinCrashSession]; its shutdown_timeout is kept below it, at most
	// 5s.
	SessionTimeout time.Duration
	// ClientID is its kafka.client_id, which the coordinator lists per
	// member (default "nerstream").
	ClientID string
}

// RunMember is one member process of [Scale]: the stream (the code of
// `nerstream run`) in group o.Group on the benchmark's topics, with
// [sleepRecognizer] as its model, until in reaches its end (the parent
// closed it) or ctx ends; then it shuts down gracefully.
func RunMember(ctx context.Context, o MemberOptions, in io.Reader, stderr io.Writer) error {
	if o.Broker == "" || o.Group == "" || o.Latency < 0 || o.MaxDocs <= 0 || o.SessionTimeout < MinCrashSession {
		return fmt.Errorf("%w: a member needs a broker, a group, a latency >= 0, max docs > 0 and a session timeout >= %v", ErrOptions, MinCrashSession)
	}
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{o.Broker}
	cfg.Kafka.GroupID = o.Group
	if o.ClientID != "" {
		cfg.Kafka.ClientID = o.ClientID
	}
	cfg.Kafka.HeartbeatInterval = scaleMemberHeartbeat
	cfg.Kafka.SessionTimeout = o.SessionTimeout
	cfg.Kafka.RebalanceTimeout = scaleMemberRebalance
	// A draining member sends no heartbeats: its drain must end well
	// within its session.
	cfg.ShutdownTimeout = min(scaleMemberShutdown, o.SessionTimeout/2)
	cfg.Input.Topics = []string{bpInputTopic}
	cfg.Output.Topic = bpOutTopic
	cfg.Output.DeadLetterTopic = bpDeadTopic
	cfg.Model.Types = []string{"person", "organization", "location"}
	// One batch at the model at a time, as one worker per GPU.
	cfg.Batch.MaxDocs, cfg.Batch.Workers = o.MaxDocs, 1
	cfg.Batch.MaxInFlight = memberMaxInFlight(o.MaxDocs)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	rec := &sleepRecognizer{latency: o.Latency, types: cfg.Model.Types}
	mem, err := stream.New(cfg, nil, stream.WithRecognizer(rec), stream.WithModelName("bench-sleep"), stream.WithLogger(log))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, in); cancel() }()
	err = mem.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// sleepRecognizer is a test double of a model: every call waits latency,
// as a batch on a remote GPU worker would, and finds no entities.
type sleepRecognizer struct {
	latency time.Duration
	types   []string
}

func (r *sleepRecognizer) Recognize(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(r.latency):
	}
	anns := make([]model.Annotation, len(docs))
	for i, d := range docs {
		types := d.Types
		if len(types) == 0 {
			types = r.types
		}
		anns[i] = model.Annotation{ID: d.ID, Types: types}
	}
	return anns, nil
}
