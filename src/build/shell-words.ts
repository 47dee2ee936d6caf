import { BuildError } from '../errors';

/**
 * The word processing Docker applies to the arguments of ADD, COPY, ENV,
 * ARG, LABEL, EXPOSE, FROM, USER, VOLUME, WORKDIR and STOPSIGNAL (not RUN,
 * CMD or ENTRYPOINT: their shell does it): `$VAR`, `${VAR}`,
 * `${VAR:-default}`, `${VAR:+alternative}` (and the forms without `:`,
 * which test for set rather than non-empty), `${VAR:?message}`; 'single'
 * quotes are literal, "double" quotes expand variables, and the escape
 * character takes the next character literally.
 */

export type Lookup = (name: string) => string | undefined;

const NAME_CHAR = /[A-Za-z0-9_]/;

class WordReader {
  private i = 0;
  readonly words: string[] = [];
  private word = '';
  /** Whether the current word exists (`""` makes an empty one). */
  private started = false;

  constructor(
    private readonly text: string,
    private readonly lookup: Lookup,
    private readonly escape: string,
    private readonly split: boolean,
  ) {}

  run(): string[] {
    const { text } = this;
    while (this.i < text.length) {
      const c = text[this.i];
      if (this.split && /\s/.test(c)) {
        this.endWord();
        this.i++;
      } else if (c === this.escape) {
        this.i++;
        if (this.i < text.length) this.append(text[this.i++]);
        else this.append(c);
      } else if (c === "'") {
        const end = text.indexOf("'", this.i + 1);
        if (end === -1) throw new BuildError(`unexpected end of statement while looking for matching single-quote in ${JSON.stringify(text)}`);
        this.append(text.slice(this.i + 1, end));
        this.i = end + 1;
      } else if (c === '"') {
        this.doubleQuoted();
      } else if (c === '$') {
        const value = this.variable();
        // An unquoted value splits into words where the text does.
        if (this.split) {
          const parts = value.split(/\s+/);
          parts.forEach((part, n) => {
            if (n > 0) this.endWord();
            if (part !== '') this.append(part);
          });
        } else {
          this.word += value;
          this.started ||= value !== '';
        }
      } else {
        this.append(c);
        this.i++;
      }
    }
    this.endWord();
    return this.words;
  }

  private append(text: string): void {
    this.word += text;
    this.started = true;
  }

  private endWord(): void {
    if (this.started) this.words.push(this.word);
    this.word = '';
    this.started = false;
  }

  private doubleQuoted(): void {
    const { text } = this;
    this.started = true;
    for (this.i++; this.i < text.length; ) {
      const c = text[this.i];
      if (c === '"') {
        this.i++;
        return;
      }
      if (c === this.escape && this.i + 1 < text.length && (text[this.i + 1] === '"' || text[this.i + 1] === '$' || text[this.i + 1] === this.escape)) {
        this.word += text[this.i + 1];
        this.i += 2;
      } else if (c === '$') {
        this.word += this.variable();
      } else {
        this.word += c;
        this.i++;
      }
    }
    throw new BuildError(`unexpected end of statement while looking for matching double-quote in ${JSON.stringify(text)}`);
  }

  /** At a `$`: the value it stands for; `$` before anything but a name or `{` is itself. */
  private variable(): string {
    const { text } = this;
    this.i++;
    if (text[this.i] === '{') {
      const start = this.i + 1;
      let end = start;
      while (end < text.length && NAME_CHAR.test(text[end])) end++;
      const name = text.slice(start, end);
      if (name === '') throw new BuildError(`bad substitution in ${JSON.stringify(text)}`);
      if (text[end] === '}') {
        this.i = end + 1;
        return this.lookup(name) ?? '';
      }
      const modifier = /^(:?[-+?])/.exec(text.slice(end))?.[1];
      if (modifier === undefined) throw new BuildError(`unsupported modifier (${text[end] ?? 'end of text'}) in ${JSON.stringify(text)}`);
      const close = matchingBrace(text, end + modifier.length);
      if (close === -1) throw new BuildError(`missing '}' in ${JSON.stringify(text)}`);
      const argument = text.slice(end + modifier.length, close);
      this.i = close + 1;
      const value = this.lookup(name);
      const present = modifier.startsWith(':') ? value !== undefined && value !== '' : value !== undefined;
      const word = (): string => new WordReader(argument, this.lookup, this.escape, false).run().join('');
      switch (modifier.replace(':', '')) {
        case '-':
          return present ? (value as string) : word();
        case '+':
          return present ? word() : '';
        default:
          if (!present) throw new BuildError(`${name}: ${word() || 'is not set'}`);
          return value as string;
      }
    }
    let end = this.i;
    while (end < text.length && NAME_CHAR.test(text[end])) end++;
    if (end === this.i) return '$';
    const name = text.slice(this.i, end);
    this.i = end;
    return this.lookup(name) ?? '';
  }
}

function matchingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

/** Expands variables and removes quotes, keeping whitespace: one word. */
export function expandWord(text: string, lookup: Lookup, escape = '\\'): string {
  return new WordReader(text, lookup, escape, false).run().join('');
}

/** Expands variables, removes quotes and splits on whitespace that is not quoted. */
export function expandWords(text: string, lookup: Lookup, escape = '\\'): string[] {
  return new WordReader(text, lookup, escape, true).run();
}

/**
 * Splits `KEY=VALUE KEY2="a b"` at whitespace outside quotes, keeping the
 * quotes for `expandWord` to process: what ENV, LABEL and ARG take.
 */
export function splitQuoted(text: string, escape = '\\'): string[] {
  const words: string[] = [];
  let word = '';
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === null && /\s/.test(c)) {
      if (word !== '') words.push(word);
      word = '';
      continue;
    }
    if (c === escape && i + 1 < text.length && quote !== "'") {
      word += c + text[++i];
      continue;
    }
    if (c === '"' || c === "'") quote = quote === null ? c : quote === c ? null : quote;
    word += c;
  }
  if (quote !== null) throw new BuildError(`unmatched ${quote} quote in ${JSON.stringify(text)}`);
  if (word !== '') words.push(word);
  return words;
}

/**
 * The `KEY=VALUE ...` pairs of ENV, LABEL (and ARG, where the value is
 * optional), values expanded; or the old one-pair form `KEY VALUE WITH
 * SPACES`, which ENV and LABEL still accept.
 */
export function parseKeyValues(text: string, lookup: Lookup, escape: string, options: { valueOptional?: boolean } = {}): [string, string | undefined][] {
  const words = splitQuoted(text, escape);
  if (words.length === 0) return [];
  if (!options.valueOptional && !words[0].includes('=')) {
    const legacy = /^(\S+)\s+(\S[\s\S]*)$/.exec(text.trim());
    if (!legacy) throw new BuildError(`${words[0]} needs a value (KEY=VALUE)`);
    return [[legacy[1], expandWord(legacy[2], lookup, escape)]];
  }
  return words.map((word) => {
    const eq = word.indexOf('=');
    if (eq === -1) {
      if (!options.valueOptional) throw new BuildError(`${JSON.stringify(word)} is not KEY=VALUE`);
      return [expandWord(word, lookup, escape), undefined];
    }
    const key = expandWord(word.slice(0, eq), lookup, escape);
    if (key === '') throw new BuildError(`${JSON.stringify(word)} has an empty name`);
    return [key, expandWord(word.slice(eq + 1), lookup, escape)];
  });
}
