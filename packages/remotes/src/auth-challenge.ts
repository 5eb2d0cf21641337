/** One challenge from a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"`. */
export interface AuthChallenge {
  /** The scheme, lowercased: `bearer`, `basic`, … */
  scheme: string;
  /** Auth parameters with lowercased names and unquoted values (`realm`, `service`, `scope`, `error`). */
  params: Record<string, string>;
}

/**
 * Parses every challenge in one or more `WWW-Authenticate` header values (RFC 7235: a header may
 * carry several challenges separated by commas, and a response may carry several headers).
 * Malformed trailing input ends the parse; what was understood so far is returned.
 */
export function parseAuthChallenges(header: string | readonly string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  const values = typeof header === 'string' ? [header] : header;
  return values.flatMap(parseOne);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

function parseOne(value: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  let s = value;
  const skip = (re: RegExp) => {
    const m = re.exec(s);
    if (m) s = s.slice(m[0].length);
    return m;
  };
  for (;;) {
    skip(/^[\s,]*/);
    const scheme = skip(TOKEN);
    if (!scheme) return out;
    const challenge: AuthChallenge = { scheme: scheme[0].toLowerCase(), params: {} };
    out.push(challenge);
    // auth-params: name=value or name="quoted", separated by commas. A token that is not
    // followed by '=' starts the next challenge.
    for (;;) {
      const save = s;
      skip(/^[\s,]*/);
      const name = skip(TOKEN);
      if (!name || !skip(/^\s*=\s*/)) {
        s = save;
        break;
      }
      let v: string;
      if (s.startsWith('"')) {
        let i = 1;
        v = '';
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          v += s[i++];
        }
        s = s.slice(i + 1);
      } else {
        const m = skip(/^[^\s,]*/);
        v = m ? m[0] : '';
      }
      challenge.params[name[0].toLowerCase()] = v;
    }
    if (s.length > 0 && !/^[\s,]/.test(s)) return out;
  }
}
