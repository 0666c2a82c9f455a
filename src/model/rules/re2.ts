// RE2 syntax check. Envoy matches regexes with RE2 and Istio validates them with Go's
// regexp/syntax (the same language), so a pattern JavaScript accepts may still be refused:
// lookaround, backreferences, possessive quantifiers, `\u0041`. This is a parser of the
// RE2 syntax (github.com/google/re2/wiki/Syntax, Go's regexp/syntax parse.go), reporting the
// first construct RE2 would refuse; it builds nothing.

/** Istio's cap: Envoy's program-size limit is approximated by the pattern length. */
export const MAX_REGEX_LENGTH = 1024;
const MAX_REPEAT = 1000;

const POSIX_CLASSES = new Set(['alnum', 'alpha', 'ascii', 'blank', 'cntrl', 'digit', 'graph', 'lower', 'print', 'punct', 'space', 'upper', 'word', 'xdigit']);

class Re2Error extends Error {}

/** Undefined when `re` is a valid RE2 pattern, otherwise why not. */
export function re2Error(re: string): string | undefined {
  if (re.length > MAX_REGEX_LENGTH) return `regex is ${re.length} characters long; Istio allows at most ${MAX_REGEX_LENGTH}`;
  try {
    new Parser(re).parse();
    return undefined;
  } catch (e) {
    if (e instanceof Re2Error) return e.message;
    throw e;
  }
}

class Parser {
  private readonly s: string[];
  private i = 0;
  private depth = 0;
  /** Whether the last item can take a repetition operator. */
  private operand = false;
  /** Whether the last item is itself a repetition (RE2 refuses `a**`, `a*+`, `a{2}{3}`). */
  private repeated = false;

  constructor(re: string) {
    this.s = Array.from(re); // code points, as RE2 reads UTF-8 runes
  }

  private fail(msg: string): never {
    throw new Re2Error(msg);
  }

  private peek(k = 0): string | undefined {
    return this.s[this.i + k];
  }

  private rest(n: number): string {
    return this.s.slice(this.i, this.i + n).join('');
  }

  parse(): void {
    while (this.i < this.s.length) {
      const c = this.s[this.i]!;
      switch (c) {
        case '(':
          this.group();
          break;
        case ')':
          if (this.depth === 0) this.fail('unexpected ")": no group is open');
          this.depth--;
          this.i++;
          this.item();
          break;
        case '|':
          this.i++;
          this.operand = false;
          this.repeated = false;
          break;
        case '*':
        case '+':
        case '?':
          this.repeat(c, 1);
          break;
        case '{': {
          const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i, this.i + 16).join(''));
          if (!m) {
            this.i++; // not a repetition: a literal brace, as in RE2
            this.item();
            break;
          }
          const min = Number(m[1]);
          const max = m[2] === undefined ? min : m[3] === '' ? undefined : Number(m[3]);
          if (min > MAX_REPEAT || (max !== undefined && max > MAX_REPEAT)) this.fail(`repeat count in "${m[0]}" is over ${MAX_REPEAT}, the most RE2 allows`);
          if (max !== undefined && max < min) this.fail(`invalid repeat count "${m[0]}": the maximum is less than the minimum`);
          this.repeat(m[0], m[0].length);
          break;
        }
        case '[':
          this.charClass();
          this.item();
          break;
        case '\\':
          this.escape(false);
          break;
        default:
          this.i++;
          this.item();
      }
    }
    if (this.depth > 0) this.fail('missing ")": a group is not closed');
  }

  private item(): void {
    this.operand = true;
    this.repeated = false;
  }

  private repeat(op: string, len: number): void {
    if (this.repeated) this.fail(`invalid nested repetition operator "${op}" (RE2 has no possessive quantifiers; use a group to repeat a repetition)`);
    if (!this.operand) this.fail(`missing argument to repetition operator "${op}"`);
    this.i += len;
    if (this.peek() === '?') this.i++; // non-greedy
    this.repeated = true;
  }

  private group(): void {
    this.i++;
    this.operand = false;
    this.repeated = false;
    if (this.peek() !== '?') {
      this.depth++;
      return;
    }
    const two = this.rest(3);
    if (two.startsWith('?=') || two.startsWith('?!')) this.fail(`lookahead "(${two.slice(0, 2)}" is not supported by RE2`);
    if (two === '?<=' || two === '?<!') this.fail(`lookbehind "(${two}" is not supported by RE2`);
    if (two.startsWith('?>')) this.fail('atomic groups "(?>" are not supported by RE2');
    if (two.startsWith('?#')) this.fail('comments "(?#" are not supported by RE2');
    if (two === '?P=' || two === '?P>') this.fail(`backreferences and recursion "(${two}" are not supported by RE2`);
    if (two.startsWith('?P<') || two.startsWith('?<')) {
      this.i += two.startsWith('?P<') ? 3 : 2;
      let name = '';
      while (this.peek() !== undefined && this.peek() !== '>') name += this.s[this.i++];
      if (this.peek() !== '>') this.fail(`named group "(?<${name}" is not closed with ">"`);
      if (!/^[A-Za-z0-9_]+$/.test(name)) this.fail(`invalid group name "${name}": expected letters, digits and "_"`);
      this.i++;
      this.depth++;
      return;
    }
    // Flags: (?flags) or (?flags:re), flags from imsU with an optional "-" before the cleared ones.
    this.i++;
    let flags = 0;
    let negated = false;
    let afterMinus = 0;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail('missing ")": the flag group "(?" is not closed');
      if (c === 'i' || c === 'm' || c === 's' || c === 'U') {
        flags++;
        if (negated) afterMinus++;
        this.i++;
        continue;
      }
      if (c === '-' && !negated) {
        negated = true;
        this.i++;
        continue;
      }
      const plainGroup = c === ':' && flags === 0 && !negated; // (?:re)
      if (plainGroup || ((c === ')' || c === ':') && flags > 0 && (!negated || afterMinus > 0))) {
        this.i++;
        if (c === ':') this.depth++;
        return;
      }
      this.fail(`invalid or unsupported Perl syntax "(?${this.s.slice(this.i - (flags + (negated ? 1 : 0)), this.i + 1).join('')}"; RE2 groups are (re), (?:re), (?P<name>re), (?<name>re) and flag groups like (?i)`);
    }
  }

  /** `[...]`: ranges, escapes, POSIX classes; a leading `]` is literal. */
  private charClass(): void {
    const start = this.i;
    this.i++;
    if (this.peek() === '^') this.i++;
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail(`missing "]": the character class starting at offset ${start} is not closed`);
      if (c === ']' && !first) {
        this.i++;
        return;
      }
      first = false;
      if (c === '[' && this.peek(1) === ':') {
        const close = this.s.indexOf(':', this.i + 2);
        if (close > 0 && this.s[close + 1] === ']') {
          const raw = this.s.slice(this.i + 2, close).join('');
          const name = raw.startsWith('^') ? raw.slice(1) : raw;
          if (!POSIX_CLASSES.has(name)) this.fail(`unknown POSIX class "[:${raw}:]"`);
          this.i = close + 2;
          continue;
        }
      }
      const lo = this.classChar();
      // After a class like \d, a "-" is a literal (Perl syntax), not a range.
      if (lo !== undefined && this.peek() === '-' && this.peek(1) !== ']' && this.peek(1) !== undefined) {
        this.i++;
        const hi = this.classChar();
        if (hi === undefined) this.fail('invalid character class range: a class like \\d cannot end a range');
        if (hi < lo) this.fail(`invalid character class range "${String.fromCodePoint(lo)}-${String.fromCodePoint(hi)}": the end is before the start`);
      }
    }
  }

  /** One class member; its code point, or undefined for a class escape like `\d`. */
  private classChar(): number | undefined {
    if (this.peek() === '\\') return this.escape(true);
    return this.s[this.i++]!.codePointAt(0)!;
  }

  /** An escape after `\`. Returns the code point of a literal escape, undefined otherwise. */
  private escape(inClass: boolean): number | undefined {
    this.i++;
    const c = this.peek();
    if (c === undefined) this.fail('trailing backslash at the end of the regex');
    this.i++;
    const literal = (cp: number): number => {
      if (!inClass) this.item();
      return cp;
    };
    const cls = (): undefined => {
      if (!inClass) this.item();
      return undefined;
    };
    switch (c) {
      case 'a': return literal(7);
      case 'f': return literal(12);
      case 't': return literal(9);
      case 'n': return literal(10);
      case 'r': return literal(13);
      case 'v': return literal(11);
      case 'd': case 'D': case 's': case 'S': case 'w': case 'W':
        return cls();
      case 'b': case 'B': case 'A': case 'z':
        if (inClass) this.fail(`"\\${c}" is not allowed inside a character class`);
        return cls();
      case 'p': case 'P':
        this.unicodeClass(c);
        return cls();
      case 'Q': {
        if (inClass) this.fail('"\\Q" is not allowed inside a character class');
        let n = 0;
        while (this.i < this.s.length && !(this.peek() === '\\' && this.peek(1) === 'E')) {
          this.i++;
          n++;
        }
        if (this.i < this.s.length) this.i += 2;
        if (n > 0) this.item();
        return undefined;
      }
      case 'x': {
        if (this.peek() === '{') {
          const close = this.s.indexOf('}', this.i);
          const hex = close > 0 ? this.s.slice(this.i + 1, close).join('') : '';
          if (!/^[0-9A-Fa-f]{1,8}$/.test(hex) || parseInt(hex, 16) > 0x10ffff) this.fail('invalid escape "\\x{…}": expected 1 to 6 hex digits up to 10FFFF');
          this.i = close + 1;
          return literal(parseInt(hex, 16));
        }
        const hex = this.rest(2);
        if (!/^[0-9A-Fa-f]{2}$/.test(hex)) this.fail('invalid escape "\\x": expected two hex digits or \\x{…}');
        this.i += 2;
        return literal(parseInt(hex, 16));
      }
      case '0': {
        let v = 0;
        for (let k = 0; k < 2 && /[0-7]/.test(this.peek() ?? ''); k++) v = v * 8 + Number(this.s[this.i++]);
        return literal(v);
      }
      case '1': case '2': case '3': case '4': case '5': case '6': case '7':
        // Octal \12 is allowed; a lone digit is a backreference.
        if (/[0-7]/.test(this.peek() ?? '')) {
          let v = Number(c);
          for (let k = 0; k < 2 && /[0-7]/.test(this.peek() ?? ''); k++) v = v * 8 + Number(this.s[this.i++]);
          return literal(v);
        }
        return this.fail(`backreference "\\${c}" is not supported by RE2`);
      case '8': case '9':
        return this.fail(`backreference "\\${c}" is not supported by RE2`);
      case 'k':
        return this.fail('named backreference "\\k" is not supported by RE2');
      case 'u':
        return this.fail('"\\u" escapes are JavaScript syntax; RE2 writes \\x{…}');
      case 'C':
        return this.fail('"\\C" (any byte) is refused by Istio\'s RE2 validation');
    }
    const cp = c.codePointAt(0)!;
    if (cp < 0x80 && !/[A-Za-z0-9]/.test(c)) return literal(cp); // escaped punctuation
    return this.fail(`invalid escape "\\${c}"`);
  }

  /** `\pL`, `\p{Greek}`, `\p{^Greek}`: Unicode general categories and scripts, and Any. */
  private unicodeClass(p: string): void {
    let name: string;
    if (this.peek() === '{') {
      const close = this.s.indexOf('}', this.i);
      if (close < 0) this.fail(`"\\${p}{" is not closed with "}"`);
      name = this.s.slice(this.i + 1, close).join('');
      this.i = close + 1;
    } else {
      const c = this.peek();
      if (c === undefined) this.fail(`"\\${p}" needs a class name`);
      name = c;
      this.i++;
    }
    const bare = name.startsWith('^') ? name.slice(1) : name;
    if (!/^[A-Za-z_]+$/.test(bare) || !isUnicodeClass(bare)) this.fail(`unknown Unicode class "\\${p}{${name}}"`);
  }
}

function isUnicodeClass(name: string): boolean {
  if (name === 'Any') return true;
  // RE2 knows general categories by their one- or two-letter names only, and scripts by name.
  for (const form of name.length <= 2 ? [`\\p{gc=${name}}`] : [`\\p{sc=${name}}`]) {
    try {
      new RegExp(form, 'u');
      return true;
    } catch {
      // not this kind of class
    }
  }
  return false;
}
