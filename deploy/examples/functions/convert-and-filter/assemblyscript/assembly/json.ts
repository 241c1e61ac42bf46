// A small strict JSON reader and a string writer, enough for the function:
// it reads one top-level object, keeping the text of its string and number
// members, and validates (and skips) everything else.

export const KIND_STRING: u8 = 1;
export const KIND_NUMBER: u8 = 2;
export const KIND_OTHER: u8 = 3;

/** One member of the top-level object. */
export class Member {
  constructor(public key: string, public kind: u8, public text: string) {}
}

/** The reason parseObject failed, when it returns null. */
export let jsonError: string = "";

class Parser {
  pos: i32 = 0;
  err: string = "";
  constructor(public s: string) {}

  fail(what: string): void {
    if (this.err.length == 0) this.err = what + " at character " + this.pos.toString();
  }
  peek(): i32 {
    return this.pos < this.s.length ? this.s.charCodeAt(this.pos) : -1;
  }
  space(): void {
    for (let c = this.peek(); c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d; c = this.peek()) this.pos++;
  }
  expect(c: i32): bool {
    this.space();
    if (this.peek() != c) {
      this.fail("want '" + String.fromCharCode(c) + "'");
      return false;
    }
    this.pos++;
    return true;
  }

  str(): string {
    if (!this.expect(0x22)) return "";
    let out = "";
    let from = this.pos;
    while (true) {
      const c = this.peek();
      if (c < 0) {
        this.fail("unterminated string");
        return "";
      }
      if (c < 0x20) {
        this.fail("control character in string");
        return "";
      }
      if (c == 0x22) break;
      if (c != 0x5c) {
        this.pos++;
        continue;
      }
      out += this.s.substring(from, this.pos);
      this.pos++;
      const e = this.peek();
      this.pos++;
      if (e == 0x22) out += "\"";
      else if (e == 0x5c) out += "\\";
      else if (e == 0x2f) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        let u = 0;
        for (let i = 0; i < 4; i++) {
          const h = this.peek();
          this.pos++;
          let d = -1;
          if (h >= 0x30 && h <= 0x39) d = h - 0x30;
          else if (h >= 0x61 && h <= 0x66) d = h - 0x61 + 10;
          else if (h >= 0x41 && h <= 0x46) d = h - 0x41 + 10;
          if (d < 0) {
            this.fail("bad \\u escape");
            return "";
          }
          u = u * 16 + d;
        }
        out += String.fromCharCode(u); // UTF-16 code unit: surrogate pairs join up
      } else {
        this.fail("bad escape");
        return "";
      }
      from = this.pos;
    }
    out += this.s.substring(from, this.pos);
    this.pos++;
    return out;
  }

  digits(): i32 {
    const start = this.pos;
    for (let c = this.peek(); c >= 0x30 && c <= 0x39; c = this.peek()) this.pos++;
    return this.pos - start;
  }

  num(): string {
    const start = this.pos;
    if (this.peek() == 0x2d) this.pos++;
    const first = this.peek();
    const n = this.digits();
    if (n == 0 || (first == 0x30 && n > 1)) {
      this.fail("bad number");
      return "";
    }
    if (this.peek() == 0x2e) {
      this.pos++;
      if (this.digits() == 0) this.fail("bad fraction");
    }
    if (this.peek() == 0x65 || this.peek() == 0x45) {
      this.pos++;
      if (this.peek() == 0x2b || this.peek() == 0x2d) this.pos++;
      if (this.digits() == 0) this.fail("bad exponent");
    }
    return this.s.substring(start, this.pos);
  }

  /** comma consumes a ',' after a member or element and says whether there was one. */
  comma(): bool {
    this.space();
    if (this.err.length > 0 || this.peek() != 0x2c) return false;
    this.pos++;
    return true;
  }

  word(w: string): void {
    if (this.s.substr(this.pos, w.length) != w) this.fail("bad literal");
    else this.pos += w.length;
  }

  /** value reads any value; it returns its kind and, for strings and numbers, its text. */
  value(depth: i32): Member {
    this.space();
    if (depth > 64) {
      this.fail("nested too deep");
      return new Member("", KIND_OTHER, "");
    }
    const c = this.peek();
    if (c == 0x22) return new Member("", KIND_STRING, this.str());
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return new Member("", KIND_NUMBER, this.num());
    if (c == 0x74) this.word("true");
    else if (c == 0x66) this.word("false");
    else if (c == 0x6e) this.word("null");
    else if (c == 0x7b) this.members(depth + 1, null);
    else if (c == 0x5b) {
      this.pos++;
      this.space();
      if (this.peek() == 0x5d) this.pos++;
      else {
        while (true) {
          this.value(depth + 1);
          if (!this.comma()) break;
        }
        this.expect(0x5d);
      }
    } else this.fail("want a value");
    return new Member("", KIND_OTHER, "");
  }

  /** members reads an object, appending its members to out when out is not null. */
  members(depth: i32, out: Array<Member> | null): void {
    if (!this.expect(0x7b)) return;
    this.space();
    if (this.peek() == 0x7d) {
      this.pos++;
      return;
    }
    while (true) {
      this.space();
      const key = this.str();
      if (!this.expect(0x3a)) return;
      const v = this.value(depth);
      v.key = key;
      if (out !== null) out.push(v);
      if (!this.comma()) break;
    }
    this.expect(0x7d);
  }
}

/** parseObject reads s, which must hold one JSON object, or returns null. */
export function parseObject(s: string): Array<Member> | null {
  const p = new Parser(s);
  const out = new Array<Member>();
  p.members(0, out);
  p.space();
  if (p.err.length == 0 && p.pos != s.length) p.fail("trailing data");
  if (p.err.length > 0) {
    jsonError = p.err;
    return null;
  }
  return out;
}

/** find returns the last member named key (as Go's encoding/json keeps the last), or null. */
export function find(members: Array<Member>, key: string): Member | null {
  for (let i = members.length - 1; i >= 0; i--) {
    if (members[i].key == key) return members[i];
  }
  return null;
}

const HEX = "0123456789abcdef";

/** quote writes s as a JSON string the way Go's encoding/json does with HTML escaping off. */
export function quote(s: string): string {
  let out = "\"";
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc = "";
    if (c == 0x22) esc = "\\\"";
    else if (c == 0x5c) esc = "\\\\";
    else if (c == 0x0a) esc = "\\n";
    else if (c == 0x0d) esc = "\\r";
    else if (c == 0x09) esc = "\\t";
    else if (c == 0x08) esc = "\\b";
    else if (c == 0x0c) esc = "\\f";
    else if (c < 0x20 || c == 0x2028 || c == 0x2029) {
      esc = "\\u" + HEX.charAt((c >> 12) & 15) + HEX.charAt((c >> 8) & 15) + HEX.charAt((c >> 4) & 15) + HEX.charAt(c & 15);
    } else continue;
    out += s.substring(from, i) + esc;
    from = i + 1;
  }
  return out + s.substring(from) + "\"";
}
