package transform

import "testing"

func TestShortPrefix(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 8, ""},
		{"hello", 8, "hello"},
		{"hello", 5, "hello"},
		{"hello world", 5, "hello…(11 bytes)"},
		{"héllo", 2, "h…(6 bytes)"},  // é is 2 bytes: not cut through
		{"héllo", 3, "hé…(6 bytes)"}, // whole
		{"日本語", 4, "日…(9 bytes)"},
		{"😀😀", 3, "…(8 bytes)"},
		{"a\nb", 8, "a\nb"},
		{"\xff\xfeab", 8, `"\xff\xfeab"`},
		{"\xff\xfeabcdef", 4, `"\xff\xfeab"…(8 bytes)`},
		{"ab\xffcdef", 2, "ab…(7 bytes)"},
		{"hello", 0, "…(5 bytes)"},
		{"hello", -1, "…(5 bytes)"},
	} {
		if got := ShortPrefix([]byte(c.in), c.n); got != c.want {
			t.Errorf("ShortPrefix(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
