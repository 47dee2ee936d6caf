/**
 * `WWW-Authenticate` challenges (RFC 7235), as registries send them with a
 * 401: `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`
 * sends the client to a token server; `Basic realm="..."` asks for the
 * credentials on every request.
 */
export interface Challenge {
  /** Lowercase: `bearer`, `basic`. */
  scheme: string;
  /** Parameter names lowercase, values as sent (unquoted). */
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/**
 * Every challenge of one or more `WWW-Authenticate` headers. A header may
 * hold several challenges separated by commas, as the parameters are: a
 * token that is not followed by `=` starts the next challenge. Malformed
 * text ends the parse; what was read before it is kept.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseChallenges(h));
  const challenges: Challenge[] = [];
  let rest = header;
  const skipSpace = (): void => {
    rest = rest.replace(/^[\s,]+/, '');
  };
  skipSpace();
  while (rest.length > 0) {
    const scheme = TOKEN.exec(rest)?.[0];
    if (scheme === undefined) break;
    rest = rest.slice(scheme.length);
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skipSpace();
    // Parameters: name=value or name="quoted", until a token without `=` (the next scheme).
    for (;;) {
      const param = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*/.exec(rest);
      if (!param) break;
      rest = rest.slice(param[0].length);
      let value: string;
      if (rest.startsWith('"')) {
        const quoted = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
        if (!quoted) return challenges;
        value = quoted[1].replace(/\\(.)/g, '$1');
        rest = rest.slice(quoted[0].length);
      } else {
        value = TOKEN.exec(rest)?.[0] ?? '';
        rest = rest.slice(value.length);
      }
      challenge.params[param[1].toLowerCase()] = value;
      skipSpace();
    }
  }
  return challenges;
}
