import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_REGEX_LENGTH, re2Error } from '../../../../src/model/rules/re2.ts';

describe('re2Error: patterns RE2 accepts', () => {
  const valid = [
    '^/api/v[0-9]+/users$', '.*', 'a|b|', '(?i)/Users/.*', '(?i:abc)d', '(?s).', '(?-i)x', '(?:a|b)+?', '(?P<id>[0-9]+)', '(?<id>[0-9]+)',
    '[[:alpha:]_][[:^digit:]]', '[]a]', '[\\d-z]', '[^/]+', '\\pL+\\p{Greek}\\PN\\p{^Han}', '\\Qa.b*c\\E', '\\x41\\x{1F600}', '\\012',
    'a{2}', 'a{2,}', 'a{2,5}?', 'a{,3}', '{', 'x{1000}', '\\.\\-\\/\\ ', '^*$', '\\bword\\B', '\\A\\z', '\\t\\n\\r\\f\\v\\a',
  ];
  for (const re of valid) {
    it(JSON.stringify(re), () => assert.equal(re2Error(re), undefined));
  }
});

describe('re2Error: what JavaScript accepts but RE2 refuses, and plain syntax errors', () => {
  const cases: [string, RegExp][] = [
    ['foo(?=bar)', /^lookahead "\(\?=" is not supported by RE2$/],
    ['foo(?!bar)', /^lookahead "\(\?!" is not supported by RE2$/],
    ['(?<=a)b', /^lookbehind "\(\?<=" is not supported by RE2$/],
    ['(?<!a)b', /^lookbehind "\(\?<!" is not supported by RE2$/],
    ['(a)\\1', /^backreference "\\1" is not supported by RE2$/],
    ['(?<x>a)\\k<x>', /^named backreference "\\k" is not supported by RE2$/],
    ['\\9', /^backreference "\\9" is not supported by RE2$/],
    ['\\u0041', /"\\u" escapes are JavaScript syntax; RE2 writes \\x\{…\}/],
    ['a*+', /^invalid nested repetition operator "\+"/],
    ['a**', /^invalid nested repetition operator "\*"/],
    ['a{2}{3}', /^invalid nested repetition operator "\{3\}"/],
    ['(?>a)', /atomic groups/],
    ['*a', /^missing argument to repetition operator "\*"$/],
    ['a|+', /^missing argument to repetition operator "\+"$/],
    ['(?i)*', /^missing argument to repetition operator "\*"$/],
    ['a{1001}', /over 1000/],
    ['a{3,2}', /the maximum is less than the minimum/],
    ['(ab', /^missing "\)"/],
    ['ab)', /^unexpected "\)"/],
    ['[a-z', /^missing "\]"/],
    ['[z-a]', /invalid character class range "z-a"/],
    ['[[:word2:]]', /unknown POSIX class "\[:word2:\]"/],
    ['\\p{Letter}', /unknown Unicode class/],
    ['\\e', /^invalid escape "\\e"$/],
    ['\\C', /\\C/],
    ['abc\\', /^trailing backslash/],
    ['(?i-)a', /invalid or unsupported Perl syntax "\(\?i-\)"/],
    ['(?#comment)', /comments/],
    ['(?P=x)', /backreferences and recursion/],
    ['(?<a-b>x)', /invalid group name "a-b"/],
    ['(?P<ab', /named group "\(\?<ab" is not closed/],
    ['\\x4', /invalid escape "\\x"/],
  ];
  for (const [re, reason] of cases) {
    it(`${JSON.stringify(re)} → ${reason.source}`, () => {
      const err = re2Error(re);
      assert.ok(err, `${re} should be refused`);
      assert.match(err, reason);
    });
  }

  it('caps the length at 1024, as Istio does', () => {
    assert.equal(re2Error('a'.repeat(MAX_REGEX_LENGTH)), undefined);
    assert.equal(re2Error('a'.repeat(MAX_REGEX_LENGTH + 1)), 'regex is 1025 characters long; Istio allows at most 1024');
  });
});
