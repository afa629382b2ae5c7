package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nerstream/nerstream/config"
)

// setFlag collects repeated --set PATH=VALUE flags.
type setFlag []string

func (s *setFlag) String() string     { return strings.Join(*s, " ") }
func (s *setFlag) Set(v string) error { *s = append(*s, v); return nil }

// configFlags are the flags of every command that reads a configuration.
type configFlags struct {
	path string
	set  setFlag
}

func (f *configFlags) register(fs *flag.FlagSet, required bool) {
	help := "the YAML configuration"
	if required {
		help += " (required)"
	}
	fs.StringVar(&f.path, "config", "", help)
	fs.Var(&f.set, "set", "override one setting, PATH=VALUE (batch.max_docs=64, kafka.brokers=a:9092,b:9092); repeatable; wins over the file and the NERSTREAM_* environment")
}

// load reads the configuration from its three layers: the file, the
// NERSTREAM_* environment, the --set flags. It returns the configuration
// and every problem that loading and validate found; a file that cannot be
// read at all is an error.
func (f *configFlags) load(validate func(config.Config) error) (config.Config, config.Problems, error) {
	cfg, err := config.LoadFrom(f.path, config.Sources{Env: os.Environ(), Set: f.set})
	var problems config.Problems
	if err != nil && !errors.As(err, &problems) {
		return cfg, nil, usageError{err}
	}
	var more config.Problems
	if err := validate(cfg); errors.As(err, &more) {
		for _, p := range more {
			if !slices.Contains(problems, p) {
				problems = append(problems, p)
			}
		}
	}
	return cfg, problems, nil
}

// name is how messages call the configuration.
func (f *configFlags) name() string {
	if f.path == "" {
		return "the configuration"
	}
	return f.path
}

func runConfig(_ context.Context, s streams, args []string) error {
	if len(args) == 0 {
		return usagef("want a sub-command: check or print")
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		return flag.ErrHelp
	}
	if sub != "check" && sub != "print" {
		return usagef("unknown sub-command %q (want check or print)", sub)
	}
	fset := flag.NewFlagSet("config "+sub, flag.ContinueOnError)
	var cf configFlags
	cf.register(fset, false)
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	cfg, problems, err := cf.load(config.Config.ValidateRun)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		// The list is the output; the error line sums it up.
		for _, p := range problems {
			fmt.Fprintln(s.out, p)
		}
		plural := "s"
		if len(problems) == 1 {
			plural = ""
		}
		return usagef("%s: %d problem%s (listed on standard output)", cf.name(), len(problems), plural)
	}
	if sub == "check" {
		fmt.Fprintf(s.out, "%s: ok\n", cf.name())
		return nil
	}
	enc := yaml.NewEncoder(s.out)
	enc.SetIndent(2)
	if err := enc.Encode(cfg.Redacted()); err != nil {
		return err
	}
	return enc.Close()
}
