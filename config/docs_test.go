package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocsKernelExample applies the kernel example of docs/config.md
// ("Which kernels the built-in table decides"), so what it says holds.
func TestDocsKernelExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	example := yamlBlockAfter(t, string(doc), "Example: Oracle Linux's UEK5")
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatalf("the example does not load: %v\n%s", err, example)
	}
	for release, want := range map[string]string{
		"4.14.35-1902.10.2.el7uek.x86_64":  "uek5-before-512ac999d275",
		"4.14.35-1902.306.2.el7uek.x86_64": "uek5-fixed",
		"4.14.35-2047.500.9.el7uek.x86_64": "uek5-fixed",
	} {
		v := c.Kernel.Decide(release)
		if !v.Known || v.Buggy || v.Rule == nil || v.Rule.Name != want {
			t.Errorf("%s: %s by %v (%s), want not buggy by %s", release, v, v.Rule, v.Reason, want)
		}
	}
	// Without the example, the table leaves UEK5 unknown, as the text says.
	if v := (Default().Kernel).Decide("4.14.35-1902.10.2.el7uek.x86_64"); v.Known {
		t.Errorf("the built-in table decides UEK5: %+v", v)
	}
}

// yamlBlockAfter returns the first ```yaml block after the line starting
// with marker.
func yamlBlockAfter(t *testing.T, doc, marker string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+marker)
	if i < 0 {
		t.Fatalf("no %q in the document", marker)
	}
	rest := doc[i:]
	start := strings.Index(rest, "```yaml\n")
	if start < 0 {
		t.Fatalf("no yaml block after %q", marker)
	}
	rest = rest[start+len("```yaml\n"):]
	end := strings.Index(rest, "```")
	if end < 0 {
		t.Fatalf("unterminated yaml block after %q", marker)
	}
	return rest[:end]
}
