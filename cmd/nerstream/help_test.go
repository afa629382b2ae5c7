package main

import (
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
		{[]string{"prompt"}, []string{"text", "type", "variant"}},
		{[]string{"eval"}, []string{"data", "predictions", "metric"}},
		{[]string{"devices"}, []string{"backends-dir", "json"}},
		{[]string{"bench", "engine"}, []string{"docs", "types", "doc-tokens", "prompts-out", "devices"}},
		{[]string{"bench", "pipeline"}, []string{"docs", "partitions"}},
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
