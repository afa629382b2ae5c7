package main

import (
	"errors"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestHelpListsFlags: every command's --help lists its flags with their
// meaning and defaults (issue 17: --help printed the usage line only, so
// demo's --threads --timeout --max-new-tokens --gpu-layers and annotate's
// --parse --substring --variant --dataset --no-grammar --max-new-tokens
// appeared nowhere), and `nerstream help COMMAND` says the same.
func TestHelpListsFlags(t *testing.T) {
	cases := []struct {
		args  []string
		flags []string
	}{
		{[]string{"demo"}, []string{"threads", "timeout", "max-new-tokens", "gpu-layers", "model", "json"}},
		{[]string{"annotate"}, []string{"parse", "substring", "variant", "dataset", "no-grammar", "max-new-tokens", "types", "devices"}},
		{[]string{"run"}, []string{"config", "set"}},
		{[]string{"broker"}, []string{"listen", "topics", "partitions"}},
		{[]string{"serve"}, []string{"listen", "max-in-flight", "token-file"}},
		{[]string{"prompt"}, []string{"text", "type", "variant", "tokens", "vocab", "model"}},
		{[]string{"eval"}, []string{"data", "predictions", "metric"}},
		{[]string{"devices"}, []string{"backends-dir", "json"}},
		{[]string{"bench", "engine"}, []string{"docs", "types", "doc-tokens", "prompts-out", "devices"}},
		{[]string{"bench", "pipeline"}, []string{"docs", "partitions"}},
		{[]string{"bench", "scale"}, []string{"partitions", "members", "latency", "window", "plot"}},
		{[]string{"model", "pull"}, []string{"sha256", "max-bytes"}},
		{[]string{"config", "check"}, []string{"config", "set"}},
	}
	for _, c := range cases {
		name := strings.Join(c.args, " ")
		t.Run(name, func(t *testing.T) {
			code, out, errs := runCLI(t, "", append(c.args, "--help")...)
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			if !strings.HasPrefix(out, "usage: nerstream "+c.args[0]) || !strings.Contains(out, "flags of nerstream "+name+":") {
				t.Fatalf("help:\n%s", out)
			}
			lines := strings.Split(out, "\n")
			for _, f := range c.flags {
				i := -1
				for j, l := range lines {
					if strings.HasPrefix(l, "  -"+f+" ") || l == "  -"+f {
						i = j
					}
				}
				// The flag's line, then its meaning on the next.
				if i < 0 || i+1 >= len(lines) || len(strings.TrimSpace(lines[i+1])) < 5 {
					t.Errorf("--%s is not listed with its meaning:\n%s", f, out)
				}
			}
			if len(c.args) == 1 {
				if code, again, _ := runCLI(t, "", "help", c.args[0]); code != 0 || again != out {
					t.Errorf("help %s differs from %s --help", c.args[0], c.args[0])
				}
			}
		})
	}
}

// TestHelpListsEveryDefinedFlag takes each command's flag set from the
// command itself (its --help answer carries it) and checks that the help
// printed lists every flag defined there, with a meaning, and that the
// usage line names no flag the command lacks.
func TestHelpListsEveryDefinedFlag(t *testing.T) {
	subs := map[string][]string{
		"bench":   {"engine", "threads", "pipeline", "scale"},
		"model":   {"synth", "info", "pull"},
		"config":  {"check", "print"},
		"distill": {"", "stats"},
	}
	usageFlag := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	for _, c := range commands() {
		variants, ok := subs[c.name]
		if !ok {
			variants = []string{""}
		}
		usageNames := map[string]bool{}
		for _, v := range variants {
			args := []string{"--help"}
			name := c.name
			if v != "" {
				args, name = []string{v, "--help"}, c.name+" "+v
			}
			t.Run(name, func(t *testing.T) {
				err := c.run(t.Context(), streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard}, args)
				he, ok := errors.AsType[helpError](err)
				if !ok {
					t.Fatalf("--help gave %v, not the command's flags", err)
				}
				code, out, _ := runCLI(t, "", append(strings.Fields(name), "--help")...)
				if code != 0 {
					t.Fatalf("exit %d", code)
				}
				he.fs.VisitAll(func(f *flag.Flag) {
					usageNames[f.Name] = true
					if strings.TrimSpace(f.Usage) == "" {
						t.Errorf("--%s has no meaning", f.Name)
					}
					if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f.Name) + `([ \t]|$)`).MatchString(out) {
						t.Errorf("--%s is defined but not in the help:\n%s", f.Name, out)
					}
				})
			})
		}
		for _, m := range usageFlag.FindAllStringSubmatch(c.usage, -1) {
			if !usageNames[m[1]] {
				t.Errorf("%s: the usage line names --%s, which no flag set of the command defines", c.name, m[1])
			}
		}
	}
}
