// Package localbroker is the Kafka-protocol broker for local development:
// kfake (franz-go's embedded broker) with one node, listening on one
// address, its topics created up front. `nerstream broker` runs it on its
// own, for the README's Quickstart and for trying `run` without a Kafka
// cluster; `nerstream demo` runs it on a free loopback port beside its
// member.
//
// It keeps everything in memory: stopping it loses every topic, record and
// committed offset. It has no authentication, no TLS and one replica, and
// advertises the address it listens on (clients connect to exactly that
// address, so it must be one they can reach: an address that means every
// interface, such as ":9092" or "0.0.0.0:9092", is refused). It is not a
// Kafka for production.
package localbroker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Defaults of [Options].
const (
	// DefaultListen is Kafka's usual port on loopback.
	DefaultListen = "127.0.0.1:9092"
	// DefaultPartitions is the partition count of each topic.
	DefaultPartitions = 3
	// MaxPartitions bounds the partitions of a topic, and so the memory
	// that a flag can ask for.
	MaxPartitions = 1024
	// MaxTopics bounds the topics created up front.
	MaxTopics = 256
)

// DefaultTopics are the topics of the example configurations: the input,
// the annotations and the dead letters.
var DefaultTopics = []string{"docs", "entities", "entities-dlq"}

// ErrOptions is wrapped by the errors of options that are wrong in
// themselves (a malformed address, a bad topic name, a partition count out
// of range), as opposed to an address that is taken, say.
var ErrOptions = errors.New("bad broker options")

// ErrAddrInUse is wrapped when another program listens on the address.
var ErrAddrInUse = errors.New("the address is in use by another program")

// Options configure [Start]. The zero value listens on [DefaultListen]
// and creates no topic up front.
type Options struct {
	// Listen is host:port. Port 0 picks a free one ([Broker.Addr] says
	// which). The host must be one that clients can reach: an IP address
	// or a name, not an empty or unspecified one.
	Listen string
	// Topics are created at start, with Partitions partitions each. Other
	// topics are created when a client first asks for them, as Kafka does
	// by default (auto.create.topics.enable).
	Topics []string
	// Partitions is the partition count of every topic. Default
	// [DefaultPartitions].
	Partitions int
}

// Broker is a running broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// Start starts a broker. Its errors wrap [ErrOptions] for bad options and
// [ErrAddrInUse] when the address is taken.
func Start(o Options) (*Broker, error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	// kfake listens on 127.0.0.1:PORT; ListenFn puts it on the host asked
	// for instead. It advertises what it listens on.
	listen := func(network, _ string) (net.Listener, error) { return net.Listen(network, o.Listen) }
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.SeedTopics(int32(o.Partitions), o.Topics...),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(o.Partitions),
		// Any session timeout a member asks for, as short as the demo's
		// and the tests'.
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listening on %s: %w (another broker?): %w", o.Listen, ErrAddrInUse, err)
		}
		return nil, fmt.Errorf("listening on %s: %w", o.Listen, err)
	}
	addrs := cluster.ListenAddrs()
	if len(addrs) != 1 {
		cluster.Close()
		return nil, fmt.Errorf("the embedded broker listens on %d addresses, want 1", len(addrs))
	}
	return &Broker{cluster: cluster, addr: addrs[0]}, nil
}

// check checks the options, with their defaults.
func (o Options) check() error {
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("%w: listen address %q: want host:port, such as %s", ErrOptions, o.Listen, DefaultListen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%w: listen address %q: the port is not a number from 0 to 65535", ErrOptions, o.Listen)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%w: listen address %q: the broker tells clients to connect to the address it listens on, so give one they can reach, such as %s", ErrOptions, o.Listen, DefaultListen)
	}
	if o.Partitions < 1 || o.Partitions > MaxPartitions {
		return fmt.Errorf("%w: %d partitions: want 1 to %d", ErrOptions, o.Partitions, MaxPartitions)
	}
	if len(o.Topics) > MaxTopics {
		return fmt.Errorf("%w: %d topics: at most %d", ErrOptions, len(o.Topics), MaxTopics)
	}
	for _, t := range o.Topics {
		if err := checkTopic(t); err != nil {
			return err
		}
	}
	return nil
}

// checkTopic applies Kafka's rule for topic names: 1 to 249 characters of
// ASCII letters, digits, '.', '_' and '-', and not "." or "..".
func checkTopic(t string) error {
	ok := t != "" && len(t) <= 249 && t != "." && t != ".." && !strings.ContainsFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	})
	if !ok {
		return fmt.Errorf("%w: topic name %q: want 1 to 249 of the characters a-z A-Z 0-9 . _ -", ErrOptions, t)
	}
	return nil
}

// Addr is the address the broker listens on and advertises, host:port.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker; what it held is gone. It is safe to call more
// than once.
func (b *Broker) Close() { b.cluster.Close() }
