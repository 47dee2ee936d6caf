import { parseDockerfile } from '../../src/build/dockerfile';
import { BuildError } from '../../src/errors';

function parseError(text: string, file?: string): BuildError {
  try {
    parseDockerfile(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(BuildError);
    return err as BuildError;
  }
  throw new Error('expected a parse error');
}

describe('Dockerfile parser', () => {
  test('instructions, case-insensitive names, line numbers, comments and blank lines', () => {
    const parsed = parseDockerfile('# a comment\n\nfrom busybox AS base\n  # indented comment\nRUN echo hi\n\ncmd ["sh"]\n');
    expect(parsed.instructions.map((i) => [i.name, i.line, i.args])).toEqual([
      ['FROM', 3, 'busybox AS base'],
      ['RUN', 5, 'echo hi'],
      ['CMD', 7, '["sh"]'],
    ]);
    expect(parsed.directives).toEqual({});
  });

  test('line continuations join lines, drop comment lines inside and skip empty ones (with a warning)', () => {
    const parsed = parseDockerfile('RUN apt-get update && \\\n    # inside\n    apt-get install -y \\\n\n    vim\nENV A=1 \\  \n    B=2\n');
    const [run, env] = parsed.instructions;
    expect(run).toMatchObject({ name: 'RUN', line: 1, endLine: 5, args: 'apt-get update &&     apt-get install -y     vim' });
    expect(env).toMatchObject({ name: 'ENV', line: 6, endLine: 7, args: 'A=1     B=2' });
    expect(parsed.warnings).toEqual(['Dockerfile:4: empty continuation line']);
  });

  test('parser directives: syntax and escape at the top only; the backtick escape', () => {
    const parsed = parseDockerfile('# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY c:\\dir\\ /x\n');
    expect(parsed.directives).toEqual({ syntax: 'docker/dockerfile:1', escape: '`' });
    expect(parsed.escape).toBe('`');
    expect(parsed.instructions[1].args).toBe('echo a   b');
    // With ` as the escape, a trailing backslash is just a character.
    expect(parsed.instructions[2].args).toBe('c:\\dir\\ /x');

    // After a comment or an instruction, a directive is only a comment.
    expect(parseDockerfile('# hello\n# escape=`\nFROM x\n').escape).toBe('\\');
    expect(parseDockerfile('FROM x\n# escape=`\n').directives).toEqual({});
    expect(parseError('# escape=\\\n# escape=`\nFROM x').message).toBe('Dockerfile:2: only one escape parser directive can be used');
    expect(parseError('# escape=x\nFROM x').message).toMatch(/^Dockerfile:1: invalid escape token 'x'/);
  });

  test('the JSON (exec) form where an instruction has one, the shell form otherwise', () => {
    const [cmd, shellCmd, notJson, entrypoint, label] = parseDockerfile('CMD ["echo", "a b"]\nCMD echo a b\nCMD [not json]\nENTRYPOINT ["/bin/sh", "-c"]\nLABEL ["x"]\n').instructions;
    expect(cmd.json).toEqual(['echo', 'a b']);
    expect(shellCmd.json).toBeNull();
    expect(notJson.json).toBeNull();
    expect(entrypoint.json).toEqual(['/bin/sh', '-c']);
    expect(label.json).toBeNull();
  });

  test('flags: --name=value before the arguments, checked per instruction', () => {
    const [from, copy] = parseDockerfile('FROM --platform=linux/amd64 busybox AS b\nCOPY --from=b --chown=1:2 --chmod=755 /a /b\n').instructions;
    expect(from).toMatchObject({ flags: { platform: ['linux/amd64'] }, args: 'busybox AS b' });
    expect(copy).toMatchObject({ flags: { from: ['b'], chown: ['1:2'], chmod: ['755'] }, args: '/a /b' });
    expect(parseError('FROM busybox\nCOPY --form=b a b\n').message).toMatch(/^Dockerfile:2: unknown flag: --form \(COPY takes --from, --chown, --chmod, --link\)$/);
    expect(parseError('FROM busybox\nRUN --x=1 true').message).toMatch(/^Dockerfile:2: unknown flag: --x/);
    expect(parseError('FROM busybox\nCOPY --from=a --from=b x y').message).toBe('Dockerfile:2: --from given twice');
    // A word starting with -- after the first argument is an argument.
    expect(parseDockerfile('RUN ls --all').instructions[0]).toMatchObject({ flags: {}, args: 'ls --all' });
  });

  test('an unknown instruction names its line and the file', () => {
    expect(parseError('FROM busybox\nRUN true\n\nFOOBAR x\n').message).toBe('Dockerfile:4: unknown instruction: FOOBAR');
    const error = parseError('FROM busybox\n  RUNN true', 'Dockerfile.dev');
    expect(error).toMatchObject({ file: 'Dockerfile.dev', line: 2, code: 'EBUILD' });
    expect(error.message).toBe('Dockerfile.dev:2: unknown instruction: RUNN');
    // A continued line's error names where the instruction starts.
    expect(parseError('FROM x\nRUN a \\\n  b\nWHAT \\\n  ever').line).toBe(4);
  });

  test('ONBUILD stores a parsed trigger; ONBUILD ONBUILD and ONBUILD FROM are refused', () => {
    const [onbuild] = parseDockerfile('ONBUILD COPY --chown=1 . /app').instructions;
    expect(onbuild.trigger).toMatchObject({ name: 'COPY', flags: { chown: ['1'] }, args: '. /app', original: 'COPY --chown=1 . /app' });
    expect(parseError('ONBUILD ONBUILD RUN x').message).toBe('Dockerfile:1: ONBUILD ONBUILD is not allowed');
    expect(parseError('ONBUILD FROM x').message).toBe("Dockerfile:1: FROM isn't allowed as an ONBUILD trigger");
    expect(parseError('ONBUILD BOGUS x').message).toBe('Dockerfile:1: unknown instruction: BOGUS');
  });

  test('here-documents after RUN, COPY and ADD: quoted or not, <<- strips tabs, the next instruction follows', () => {
    const parsed = parseDockerfile('FROM x\nRUN <<EOF\necho a\n  echo b\nEOF\nCOPY <<-"one" <<two /dest/\n\tfirst $A\n\tone\nsecond\ntwo\nCMD ["sh"]\nRUN echo $((1<<2))\n');
    const [, run, copy, cmd, shift] = parsed.instructions;
    expect(run).toMatchObject({ name: 'RUN', line: 2, endLine: 5, args: '<<EOF', heredocs: [{ name: 'EOF', content: 'echo a\n  echo b\n', quoted: false, raw: 'echo a\n  echo b\nEOF' }] });
    expect(copy.heredocs).toEqual([
      { name: 'one', content: 'first $A\n', quoted: true, raw: '\tfirst $A\n\tone' },
      { name: 'two', content: 'second\n', quoted: false, raw: 'second\ntwo' },
    ]);
    expect(cmd).toMatchObject({ name: 'CMD', line: 11 });
    expect(shift.heredocs).toBeUndefined();
    expect(parseDockerfile('CMD <<EOF\n').instructions[0].heredocs).toBeUndefined();
    expect(parseError('FROM x\nRUN cat <<END\nno end\n').message).toBe('Dockerfile:2: unterminated heredoc <<END: no line END after it');
  });

  test('CRLF line ends and a byte order mark', () => {
    const parsed = parseDockerfile('\uFEFFFROM busybox\r\nRUN a \\\r\n  b\r\n');
    expect(parsed.instructions.map((i) => [i.name, i.args])).toEqual([
      ['FROM', 'busybox'],
      ['RUN', 'a   b'],
    ]);
  });
});
