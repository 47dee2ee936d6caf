import { IgnoreRules } from '../../src/build/dockerignore';
import { expandWord, expandWords, parseKeyValues, splitQuoted } from '../../src/build/shell-words';
import { BuildError } from '../../src/errors';

const vars: Record<string, string> = { A: 'alpha', EMPTY: '', SPACED: 'one two', DIR: '/app' };
const lookup = (name: string): string | undefined => vars[name];

describe('Dockerfile word expansion', () => {
  test('$VAR and ${VAR}; unset is empty; a lone $ stays', () => {
    expect(expandWord('$A-${A}x $NOPE|${NOPE}|', lookup)).toBe('alpha-alphax ||');
    expect(expandWord('cost $ 5 $', lookup)).toBe('cost $ 5 $');
  });

  test('modifiers: :- :+ - + :?', () => {
    expect(expandWord('${EMPTY:-def} ${EMPTY-def} ${NOPE-def} ${A:-def}', lookup)).toBe('def  def alpha');
    expect(expandWord('${A:+alt} ${EMPTY:+alt}|${EMPTY+alt} ${NOPE+alt}|', lookup)).toBe('alt |alt |');
    expect(expandWord('${NOPE:-${A}/x}', lookup)).toBe('alpha/x');
    expect(() => expandWord('${NOPE:?must be set}', lookup)).toThrow(new BuildError('NOPE: must be set'));
    expect(() => expandWord('${A', lookup)).toThrow(BuildError);
    expect(() => expandWord('${A%x}', lookup)).toThrow(/unsupported modifier/);
  });

  test('quotes: single quotes are literal, double quotes expand; escapes', () => {
    expect(expandWord(`'$A' "$A" "a \\"q\\" \\$A" \\$A`, lookup)).toBe(`$A alpha a "q" $A $A`);
    expect(() => expandWord('"unterminated', lookup)).toThrow(/matching double-quote/);
  });

  test('splitting: on unquoted whitespace; quotes keep words together; unquoted values split', () => {
    expect(expandWords(' a  "b c"  d\'e f\' ', lookup)).toEqual(['a', 'b c', 'de f']);
    expect(expandWords('$SPACED "$SPACED" x$EMPTY ""', lookup)).toEqual(['one', 'two', 'one two', 'x', '']);
    expect(expandWords('${DIR}/bin /out/', lookup)).toEqual(['/app/bin', '/out/']);
    expect(expandWords('a\\ b', lookup)).toEqual(['a b']);
    expect(expandWords('a` b', lookup, '`')).toEqual(['a b']);
  });

  test('KEY=VALUE pairs (ENV, LABEL, ARG) and the legacy one-pair form', () => {
    expect(splitQuoted('A=1 B="x y" C=\'$z\'')).toEqual(['A=1', 'B="x y"', "C='$z'"]);
    expect(parseKeyValues('A=1 B="x y" C=\'$A\' D=$A E=', lookup, '\\')).toEqual([['A', '1'], ['B', 'x y'], ['C', '$A'], ['D', 'alpha'], ['E', '']]);
    expect(parseKeyValues('GREETING hello  $A world', lookup, '\\')).toEqual([['GREETING', 'hello  alpha world']]);
    expect(parseKeyValues('NAME OTHER=1', lookup, '\\', { valueOptional: true })).toEqual([['NAME', undefined], ['OTHER', '1']]);
    expect(() => parseKeyValues('LONELY', lookup, '\\')).toThrow(/needs a value/);
    expect(() => parseKeyValues('A="open', lookup, '\\')).toThrow(/unmatched " quote/);
    expect(() => parseKeyValues('=x', lookup, '\\')).toThrow(/empty name/);
  });
});

describe('.dockerignore', () => {
  const rules = IgnoreRules.parse(['# comment', '', '*.log', '/build', 'docs/**/*.md', '!docs/keep/README.md', 'tmp?', 'secret[0-9]', '**/node_modules', './dist/'].join('\n'));

  test.each([
    ['app.log', true],
    ['sub/app.log', false], // `*` stays within one component, at the top
    ['build', true],
    ['build/out/x.o', true], // the content of an excluded directory
    ['docs/a.md', true], // `**/` matches no directory too
    ['docs/x/y/b.md', true],
    ['docs/keep/README.md', false], // the exception comes after
    ['docs/x/b.txt', false],
    ['tmp1', true],
    ['tmp12', false],
    ['secret7', true],
    ['secretx', false],
    ['node_modules/a', true],
    ['deep/down/node_modules/b/c', true],
    ['dist/bundle.js', true],
    ['src/main.ts', false],
  ])('%s ignored: %s', (file, ignored) => {
    expect(rules.ignores(file)).toBe(ignored);
  });

  test('the last matching pattern wins; a bad pattern names its line', () => {
    const later = IgnoreRules.parse('!important.txt\n*.txt\n');
    expect(later.ignores('important.txt')).toBe(true);
    expect(() => IgnoreRules.parse('ok\n[abc\n')).toThrow(new BuildError('syntax error in pattern "[abc"', '.dockerignore', 2));
    expect(() => IgnoreRules.parse('!\n')).toThrow(/illegal exclusion pattern/);
  });

  test('an excluded directory is read on when an exception may bring back something in it', () => {
    const excepted = IgnoreRules.parse('docs\n!docs/keep/*.md\nbuild\n');
    expect(excepted.ignores('docs')).toBe(true);
    expect(excepted.mayReinclude('docs')).toBe(true);
    expect(excepted.mayReinclude('docs/keep')).toBe(true);
    expect(excepted.ignores('docs/keep/a.md')).toBe(false);
    expect(excepted.mayReinclude('build')).toBe(false);
    expect(IgnoreRules.parse('*\n!**/*.go\n').mayReinclude('any/dir')).toBe(true);
  });
});
