import { BuildError } from '../errors';

/**
 * The Dockerfile syntax, as Docker's parser reads it: parser directives
 * (`# syntax=`, `# escape=`) at the very top, comments, line
 * continuations with the escape character, one instruction per logical
 * line, `--flag=value` options and the JSON (exec) form. What the
 * arguments mean is the builder's business; this module only splits them
 * out and names the line of anything it cannot read.
 */

export const INSTRUCTIONS = [
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT',
  'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL',
] as const;
export type InstructionName = (typeof INSTRUCTIONS)[number];

/** The options each instruction takes; `true` marks one that may be given more than once. */
const FLAGS: Partial<Record<InstructionName, Record<string, boolean>>> = {
  FROM: { platform: false },
  COPY: { from: false, chown: false, chmod: false, link: false },
  ADD: { chown: false, chmod: false, link: false, checksum: false },
  RUN: { mount: true, network: false, security: false },
  HEALTHCHECK: { interval: false, timeout: false, 'start-period': false, 'start-interval': false, retries: false },
};

/** Instructions whose argument may be a JSON array of strings (the exec form). */
const JSON_FORMS: ReadonlySet<string> = new Set(['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'VOLUME', 'COPY', 'ADD']);

export interface Instruction {
  name: InstructionName;
  /** Line numbers (1-based) of the first and last physical line. */
  line: number;
  endLine: number;
  /** `--name=value` options before the arguments; a flag given without a value is `''`. Repeatable flags hold every value. */
  flags: Record<string, string[]>;
  /** The arguments after the flags, as written (continuations joined). */
  args: string;
  /** The arguments as a JSON array, for the exec form; null for the shell form. */
  json: string[] | null;
  /** The instruction as written, continuations joined: what the progress and the history show. */
  original: string;
  /** For ONBUILD: the instruction it stores. */
  trigger?: Instruction;
  /** Here-documents (`<<EOF` ... `EOF`) of a RUN, COPY or ADD, in order. */
  heredocs?: Heredoc[];
}

export interface Heredoc {
  /** The delimiter word, without quotes. */
  name: string;
  /** The body, each line ending with a newline (leading tabs removed for `<<-`). */
  content: string;
  /** A quoted delimiter (`<<"EOF"`) means no variable expansion in the body. */
  quoted: boolean;
  /** The lines as written, the delimiter line included: what a shell reads after the command. */
  raw: string;
}

export interface Dockerfile {
  /** `syntax`, `escape`, `check`, as given. */
  directives: Record<string, string>;
  escape: '\\' | '`';
  instructions: Instruction[];
  /** Non-fatal findings (empty continuation lines...), with their line. */
  warnings: string[];
}

/** `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`: a name must follow, so `$((1<<2))` is no heredoc. */
const HEREDOC = /<<(-?)(?:"([^"\s]+)"|'([^'\s]+)'|([A-Za-z_][A-Za-z0-9_.-]*))/g;
const HEREDOC_INSTRUCTIONS: ReadonlySet<string> = new Set(['RUN', 'COPY', 'ADD']);

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/;
const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);

/**
 * Parses a Dockerfile. `file` names it in errors (`Dockerfile:3: ...`).
 * Throws BuildError for an unknown instruction, a bad flag, a bad
 * directive or a continuation at the end of the file.
 */
export function parseDockerfile(text: string, file = 'Dockerfile'): Dockerfile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const directives: Record<string, string> = {};
  const warnings: string[] = [];
  let first = 0;
  for (; first < lines.length; first++) {
    const match = DIRECTIVE.exec(lines[first]);
    if (!match || !KNOWN_DIRECTIVES.has(match[1].toLowerCase())) break;
    const name = match[1].toLowerCase();
    if (name in directives) throw new BuildError(`only one ${name} parser directive can be used`, file, first + 1);
    directives[name] = match[2];
  }
  const escapeDirective = directives.escape ?? '\\';
  if (escapeDirective !== '\\' && escapeDirective !== '`') throw new BuildError(`invalid escape token '${escapeDirective}' does not match ` + '` or \\', file, 1);
  const escape = escapeDirective;
  const continuation = new RegExp(`${escape === '\\' ? '\\\\' : '`'}[ \\t]*$`);

  const instructions: Instruction[] = [];
  for (let i = first; i < lines.length; i++) {
    const start = lines[i].trim();
    if (start === '' || start.startsWith('#')) continue;
    let joined = lines[i].replace(/^\s+/, '');
    const startLine = i + 1;
    while (continuation.test(joined)) {
      joined = joined.replace(continuation, '');
      // A continuation's comment lines are dropped and its empty lines skipped, as Docker does.
      let next: string | undefined;
      for (i++; i < lines.length; i++) {
        const trimmed = lines[i].trim();
        if (trimmed.startsWith('#')) continue;
        if (trimmed === '') {
          warnings.push(`${file}:${i + 1}: empty continuation line`);
          continue;
        }
        next = lines[i];
        break;
      }
      if (next === undefined) {
        // Docker accepts a trailing continuation at the end of the file; the instruction ends there.
        i = lines.length;
        break;
      }
      joined += next;
    }
    const instruction = parseInstruction(joined, file, startLine, Math.min(i + 1, lines.length));
    if (HEREDOC_INSTRUCTIONS.has(instruction.name)) {
      const heredocs: Heredoc[] = [];
      for (const marker of instruction.args.matchAll(HEREDOC)) {
        const [, dash, doubleQuoted, singleQuoted, bare] = marker;
        const name = doubleQuoted ?? singleQuoted ?? bare;
        const strip = (line: string): string => (dash ? line.replace(/^\t+/, '') : line);
        const body: string[] = [];
        const start = i;
        for (i++; i < lines.length && strip(lines[i]) !== name; i++) body.push(lines[i]);
        if (i >= lines.length) throw new BuildError(`unterminated heredoc <<${name}: no line ${name} after it`, file, start + 1);
        heredocs.push({ name, content: body.map((l) => `${strip(l)}\n`).join(''), quoted: bare === undefined, raw: [...body, lines[i]].join('\n') });
      }
      if (heredocs.length > 0) Object.assign(instruction, { heredocs, endLine: i + 1 });
    }
    instructions.push(instruction);
  }
  return { directives, escape, instructions, warnings };
}

/** One logical line: `NAME [--flag=value...] ARGS`. */
export function parseInstruction(text: string, file: string, line: number, endLine = line, allowTrigger = true): Instruction {
  const match = /^(\S+)(?:\s+([\s\S]*))?$/.exec(text.trim());
  if (!match) throw new BuildError('empty instruction', file, line);
  const name = match[1].toUpperCase();
  if (!(INSTRUCTIONS as readonly string[]).includes(name)) throw new BuildError(`unknown instruction: ${match[1]}`, file, line);
  const instruction = name as InstructionName;
  let rest = (match[2] ?? '').trim();
  const flags: Record<string, string[]> = {};
  const allowed = FLAGS[instruction] ?? {};
  for (;;) {
    const flag = /^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?(?:\s+|$)/.exec(rest);
    if (!flag) break;
    const [whole, flagName, value] = flag;
    if (!(flagName in allowed)) throw new BuildError(`unknown flag: --${flagName} (${instruction} takes ${Object.keys(allowed).map((f) => `--${f}`).join(', ') || 'no flags'})`, file, line);
    if (flags[flagName] && !allowed[flagName]) throw new BuildError(`--${flagName} given twice`, file, line);
    flags[flagName] = [...(flags[flagName] ?? []), value ?? ''];
    rest = rest.slice(whole.length);
  }
  const parsed: Instruction = { name: instruction, line, endLine, flags, args: rest, json: JSON_FORMS.has(instruction) ? jsonForm(rest) : null, original: text.trim() };
  if (instruction === 'ONBUILD') {
    if (!allowTrigger) throw new BuildError('ONBUILD ONBUILD is not allowed', file, line);
    if (rest === '') throw new BuildError('ONBUILD requires an instruction', file, line);
    const trigger = parseInstruction(rest, file, line, endLine, false);
    if (trigger.name === 'FROM' || trigger.name === 'MAINTAINER') throw new BuildError(`${trigger.name} isn't allowed as an ONBUILD trigger`, file, line);
    parsed.trigger = trigger;
  }
  return parsed;
}

/** `["a", "b"]` as an array of strings; null when the text is not one (then it is the shell form). */
function jsonForm(text: string): string[] | null {
  if (!text.startsWith('[')) return null;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : null;
  } catch {
    return null;
  }
}
