package transform

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxRouteLen is the longest route, in bytes.
const MaxRouteLen = 255

// CheckRoute applies the route rule: a route is a relative folder path that
// stays inside the prefix it is appended to. It must be
//   - 1 to MaxRouteLen bytes of valid UTF-8;
//   - segments separated by '/', each non-empty (so no leading or trailing
//     '/' and no "//") and neither "." nor "..";
//   - free of control characters (U+0000–U+001F, U+007F–U+009F) and of
//     '\' (a separator to some tools).
//
// Nothing is rewritten: a route that breaks the rule fails the record's
// route step, so two different routes never land in the same folder.
func CheckRoute(s string) error {
	switch {
	case s == "":
		return errors.New("route is empty")
	case len(s) > MaxRouteLen:
		return fmt.Errorf("route is %d bytes, more than %d", len(s), MaxRouteLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("route %q is not valid UTF-8", ShortPrefix([]byte(s), 64))
	}
	for i, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return fmt.Errorf("route %q has a control character at byte %d", ShortPrefix([]byte(s), 64), i)
		}
		if r == '\\' {
			return fmt.Errorf("route %q has a '\\' at byte %d", ShortPrefix([]byte(s), 64), i)
		}
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch seg {
		case "":
			return fmt.Errorf("route %q has an empty segment (a leading, trailing or doubled '/')", ShortPrefix([]byte(s), 64))
		case ".", "..":
			return fmt.Errorf("route %q has a %q segment", ShortPrefix([]byte(s), 64), seg)
		}
	}
	return nil
}
