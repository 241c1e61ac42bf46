package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// This file holds the small JSON toolkit the encoders share: a string
// appender (deterministic, like encoding/json without HTML escaping) and a
// classifier for JSON encodings.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s must be valid UTF-8 (callers
// check, and reject the record otherwise). Control characters, '"' and '\\'
// are escaped, as are U+2028 and U+2029 (as encoding/json does); nothing else
// is, so the output is the shortest faithful encoding and is byte-for-byte
// deterministic.
func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
		if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xf])
			i += 3
			start = i
			continue
		}
		i++
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// kind is the type of a JSON value, told by its first byte.
type kind uint8

const (
	kindNull kind = iota
	kindString
	kindNumber
	kindBool
	kindObject
	kindArray
)

// kindOf classifies the JSON encoding raw by its first byte.
func kindOf(raw []byte) kind {
	if len(raw) == 0 {
		return kindNull
	}
	switch raw[0] {
	case '"':
		return kindString
	case '{':
		return kindObject
	case '[':
		return kindArray
	case 't', 'f':
		return kindBool
	case 'n':
		return kindNull
	}
	return kindNumber
}

// unquote returns the text of the raw JSON string s. When s has no escapes
// the result aliases s.
func unquote(s []byte) ([]byte, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, errMalformed
	}
	if body := s[1 : len(s)-1]; bytes.IndexByte(body, '\\') < 0 {
		return body, nil
	}
	var str string
	if err := json.Unmarshal(s, &str); err != nil {
		return nil, err
	}
	return []byte(str), nil
}

var errMalformed = errors.New("malformed JSON string")
