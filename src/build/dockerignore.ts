import path = require('node:path');
import { BuildError } from '../errors';

/**
 * `.dockerignore`: one pattern a line, `#` comments, `!` for an exception.
 * Patterns are Go's filepath.Match (`*`, `?`, `[a-z]`, `\` escapes) plus
 * `**` for any number of directories, matched against paths relative to
 * the context root. A pattern that matches a directory excludes what is
 * in it; the last pattern that matches a path decides.
 */

interface Pattern {
  exception: boolean;
  regexp: RegExp;
  /** The pattern up to its first wildcard. */
  prefix: string;
  text: string;
}

export class IgnoreRules {
  private constructor(private readonly patterns: Pattern[]) {}

  static parse(text: string, file = '.dockerignore'): IgnoreRules {
    const patterns: Pattern[] = [];
    text.split(/\r?\n/).forEach((raw, i) => {
      let line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const exception = line.startsWith('!');
      if (exception) line = line.slice(1).trim();
      if (line === '') throw new BuildError('illegal exclusion pattern: "!"', file, i + 1);
      const cleaned = path.posix.normalize(line).replace(/^(\.\.?\/)+/, '').replace(/^\/+/, '').replace(/\/+$/, '');
      if (cleaned === '' || cleaned === '.') return;
      patterns.push({ exception, regexp: globRegExp(cleaned, file, i + 1), prefix: cleaned.split(/[*?[\\]/, 1)[0], text: line });
    });
    return new IgnoreRules(patterns);
  }

  static none(): IgnoreRules {
    return new IgnoreRules([]);
  }

  /** Whether `relative` (a path inside the context, `/`-separated, no leading `/`) is excluded. */
  ignores(relative: string): boolean {
    const parts = relative.split('/');
    let ignored = false;
    for (const pattern of this.patterns) {
      if (pattern.exception !== ignored) continue;
      // A pattern naming a directory excludes its content: the path's parents are tried too.
      let match = pattern.regexp.test(relative);
      for (let depth = 1; !match && depth < parts.length; depth++) match = pattern.regexp.test(parts.slice(0, depth).join('/'));
      if (match) ignored = !pattern.exception;
    }
    return ignored;
  }

  /**
   * Whether an excluded directory must still be read: an exception
   * (`!dir/keep`, `!dir/*.md`) may bring back something under it.
   */
  mayReinclude(dir: string): boolean {
    return this.patterns.some((p) => p.exception && (p.prefix.startsWith(`${dir}/`) || `${dir}/`.startsWith(p.prefix)));
  }
}

/** A pattern as a RegExp over `/`-separated paths: `*` and `?` stay within one component, `**` crosses them. */
export function globRegExp(pattern: string, file?: string, line?: number): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `**/` also matches no directory at all.
        if (pattern[i + 1] === '/') {
          i++;
          source += '(?:.*/)?';
        } else {
          source += '.*';
        }
      } else {
        source += '[^/]*';
      }
    } else if (c === '?') {
      source += '[^/]';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) throw new BuildError(`syntax error in pattern ${JSON.stringify(pattern)}`, file, line);
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('^') || set.startsWith('!')) set = `^${set.slice(1)}`;
      source += `[${set.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) {
      source += escapeRegExp(pattern[++i]);
    } else {
      source += escapeRegExp(c);
    }
  }
  return new RegExp(`^${source}$`);
}

function escapeRegExp(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}
