package transform

import (
	"strconv"
	"unicode/utf8"
)

// ShortPrefix renders at most n bytes of record data b for an error message:
// valid UTF-8 as is (cut on a rune boundary), anything else %q-escaped; when
// b is longer than what is shown, "…(N bytes)" is appended, N being len(b).
// Errors that end up in workflow history quote record data only through it.
func ShortPrefix(b []byte, n int) string {
	n = max(n, 0)
	if len(b) <= n {
		if utf8.Valid(b) {
			return string(b)
		}
		return strconv.Quote(string(b))
	}
	k := n
	// Back off to the start of a rune the cut goes through.
	for i := 0; i < utf8.UTFMax-1 && k > 0 && !utf8.RuneStart(b[k]); i++ {
		k--
	}
	s := string(b[:k])
	if !utf8.ValidString(s) {
		s = strconv.Quote(string(b[:n]))
	}
	return s + "…(" + strconv.Itoa(len(b)) + " bytes)"
}
