package main

import (
	"strings"
	"testing"
)

// TestAnnotateEnrichTinyModel: annotate takes run's --set keys for fields
// and the enrich mode, and writes each event back with its entities added,
// through the real tiny model.
func TestAnnotateEnrichTinyModel(t *testing.T) {
	in := `{"ts":"t1","big":12345678901234567890,"f":1.10,"message":"card declined for Jane Doe at ACME Corp"}` + "\n" +
		`{"ts":"t2","error":{"detail":"Zoë at ACME"}}` + "\n" +
		`{"ts":"t3"}` + "\n"
	code, out, errs := runCLI(t, in, "annotate", "--model", "synth:tiny", "--threads", "1", "--max-new-tokens", "4",
		"--set", "output.mode=enrich", "--set", "input.fields.text=/message,/error/detail", "--set", "output.enrich.field=/ner", "--set", "output.enrich.tags=true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
	}
	src := strings.Split(in, "\n")
	for i := range 2 {
		// The event's own bytes, then the new members, then its "}".
		body := strings.TrimSuffix(src[i], "}")
		if !strings.HasPrefix(lines[i], body+`,"ner":[`) || !strings.Contains(lines[i], `,"entity_tags":{`) || !strings.HasSuffix(lines[i], "}") {
			t.Errorf("line %d: %s is not the event enriched", i+1, lines[i])
		}
	}
	if !strings.Contains(lines[2], `"line":3`) || !strings.Contains(lines[2], "missing_field") {
		t.Errorf("line 3: %s, want a missing_field error record", lines[2])
	}
}

// TestAnnotateEnrichBadSettings: a bad pointer or mode is one line naming
// its key, exit 2.
func TestAnnotateEnrichBadSettings(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"input.fields.text=message", "input.fields.text[0]"},
		{"input.fields.id=/a~9", "input.fields.id"},
		{"output.mode=mirror", "output.mode"},
		{"output.enrich.field=", "output.enrich.field"},
		{"input.fields.text=/m\x1b[31m~", "input.fields.text[0]"},
	} {
		code, _, errs := runCLI(t, "", "annotate", "--model", "synth:tiny", "--set", tc.set)
		checkOneLineError(t, code, 2, errs, tc.want)
		if strings.Contains(errs, "\x1b") {
			t.Errorf("%s: escape on stderr: %q", tc.set, errs)
		}
	}
}
