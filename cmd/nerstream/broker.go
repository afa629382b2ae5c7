package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/nerstream/nerstream/internal/localbroker"
)

// runBroker is `nerstream broker`: the embedded Kafka-protocol broker on
// its own, for local development, until SIGINT or SIGTERM. Its address is
// the one line on standard output, for scripts; what it holds and how to
// stop it goes to standard error.
func runBroker(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("broker", flag.ContinueOnError)
	listen := fset.String("listen", localbroker.DefaultListen, "address to listen on and advertise, host:port (port 0 picks a free one; clients must reach the host)")
	topics := fset.String("topics", strings.Join(localbroker.DefaultTopics, ","), "topics to create at start, comma-separated (others are created on first use)")
	partitions := fset.Int("partitions", localbroker.DefaultPartitions, fmt.Sprintf("partitions of each topic, 1 to %d", localbroker.MaxPartitions))
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *partitions < 1 { // 0 would be the package's default
		return usagef("--partitions %d: want 1 to %d", *partitions, localbroker.MaxPartitions)
	}
	var names []string
	for t := range strings.SplitSeq(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			names = append(names, t)
		}
	}
	b, err := localbroker.Start(localbroker.Options{Listen: *listen, Topics: names, Partitions: *partitions})
	switch {
	case errors.Is(err, localbroker.ErrOptions):
		return usageError{err}
	case errors.Is(err, localbroker.ErrAddrInUse):
		return fmt.Errorf("--listen %s: %w; stop it, or choose another port with --listen", *listen, localbroker.ErrAddrInUse)
	case err != nil:
		return fmt.Errorf("--listen %s: %w", *listen, err)
	}
	defer b.Close()
	held := "no topics yet"
	if len(names) > 0 {
		held = fmt.Sprintf("topics %s (%d partitions each)", strings.Join(names, ", "), *partitions)
	}
	fmt.Fprintf(s.err, "broker: listening on %s; %s; others are created on first use; in memory only: stopping it (Ctrl-C, SIGTERM) loses everything\n", b.Addr(), held)
	fmt.Fprintln(s.out, b.Addr())
	<-ctx.Done()
	fmt.Fprintln(s.err, "broker: stopped")
	return nil
}
