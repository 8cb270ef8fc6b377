package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// metricNames returns the metric names a PromQL expression selects,
// sorted: every identifier that is not a function or aggregation (followed
// by "("), a keyword, a label (inside {} or a by/without/on/ignoring/
// group_left/group_right list), a number or duration, or inside a string.
// It is a lexer, not a parser: promtool parses the same expressions for
// real (promtool_test.go); this only has to find the names.
func metricNames(expr string) ([]string, error) {
	var names []string
	for i := 0; i < len(expr); {
		c := rune(expr[i])
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := skipTo(expr, i, '}')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '[':
			end, err := skipTo(expr, i, ']')
			if err != nil {
				return nil, err
			}
			i = end
		case unicode.IsDigit(c) || c == '.':
			i = skipWord(expr, i)
		case isIdentStart(c):
			end := skipWord(expr, i)
			word, next := expr[i:end], nextNonSpace(expr, end)
			switch {
			case labelListKeywords[word]:
				if next < len(expr) && expr[next] == '(' {
					var err error
					if end, err = skipTo(expr, next, ')'); err != nil {
						return nil, err
					}
				}
			case keywords[word], next < len(expr) && expr[next] == '(':
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = end
		default:
			i++
		}
	}
	slices.Sort(names)
	return names, nil
}

// labelListKeywords take a parenthesised list of label names.
var labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// keywords are PromQL words that are no metric: operators, modifiers, and
// aggregations, which may take their by/without list before "(".
var keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true, "start": true, "end": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}

func isIdentStart(c rune) bool { return c == '_' || c == ':' || unicode.IsLetter(c) }

// skipWord skips an identifier, number or duration (10m, 1h30m, 0.25, 1e3).
func skipWord(s string, i int) int {
	for i < len(s) && (s[i] == '_' || s[i] == ':' || s[i] == '.' || unicode.IsLetter(rune(s[i])) || unicode.IsDigit(rune(s[i]))) {
		i++
	}
	return i
}

func nextNonSpace(s string, i int) int {
	for i < len(s) && unicode.IsSpace(rune(s[i])) {
		i++
	}
	return i
}

// skipString returns the index after the string opening at i.
func skipString(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d in %q", i, s)
}

// skipTo returns the index after the close matching the opening at i,
// skipping strings inside.
func skipTo(s string, i int, close byte) (int, error) {
	open := s[i]
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case open:
			depth++
		case close:
			if depth--; depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %q at %d in %q", open, i, s)
}

func TestMetricNames(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want []string
	}{
		{`coreguard_runtime_connected == 0`, []string{"coreguard_runtime_connected"}},
		{`sum by (reason) (rate(coreguard_allocation_failures_total{instance=~"a{b}"}[5m])) > 0`, []string{"coreguard_allocation_failures_total"}},
		{`histogram_quantile(0.99, sum by (le, event) (rate(x_bucket{i=~"$instance"}[$__rate_interval])))`, []string{"x_bucket"}},
		{`increase(a[10m]) > 0 or (a > 0 unless a offset 10m)`, []string{"a"}},
		{"((sum by (namespace, pod) (rate(b{c!=\"\"}[5m])) / sum(c)) > 0.25) * on (namespace, pod) group_left (reason) max by (namespace, pod, reason) (d)",
			[]string{"b", "c", "d"}},
		{`sum(x) without (instance) / ignoring(job) y bool`, []string{"x", "y"}},
		{`max without (job) (m) + count by (a) (n)`, []string{"m", "n"}},
		{`count(z == 1) or vector(0)`, []string{"z"}},
		{`topk(10, w) * 1e3 + 1.5`, []string{"w"}},
		{`label_replace(v, "dst", "$1", "src", "(.*)")`, []string{"v"}},
	} {
		got, err := metricNames(tt.expr)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%s) = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
	if _, err := metricNames(`a{b="c}`); err == nil || !strings.Contains(err.Error(), "unterminated") {
		t.Errorf("unterminated string: %v", err)
	}
}
