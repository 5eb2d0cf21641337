import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isInvalidArgument } from '@berth/errdefs';
import { rejectionOf, tempDir } from '@berth/testing';
import type { RegistryHost } from './hosts';
import { configureHosts, nsParam, type HostsLogger } from './hosts-config';

// Stand-ins for PEM files: the configuration reads blocks, it does not decode them.
const CA_1 = '-----BEGIN CERTIFICATE-----\nQ0EgMQ==\n-----END CERTIFICATE-----\n';
const CA_2 = '-----BEGIN CERTIFICATE-----\nQ0EgMg==\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n';
const EC_KEY = '-----BEGIN EC PRIVATE KEY-----\nRUMgS0VZ\n-----END EC PRIVATE KEY-----\n';

const ALL = ['pull', 'resolve', 'push', 'referrers'];

let root: ReturnType<typeof tempDir>;
let logged: Array<{ msg: string; fields?: Record<string, unknown> }>;
const logger: HostsLogger = (msg, fields) => logged.push({ msg, fields });

beforeEach(() => {
  root = tempDir('berth-hosts-');
  logged = [];
});
afterEach(() => root.remove());

/** Writes files under the hosts dir: `{ 'docker.io/hosts.toml': '...' }`. */
function write(files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    const path = join(root.path, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}

function hostsFor(registry: string, options: Parameters<typeof configureHosts>[0] = {}): Promise<RegistryHost[]> {
  return configureHosts({ hostDir: root.path, logger, ...options })(registry);
}

/** The parts of an endpoint most tests compare: `https://host/path`. */
const url = (h: RegistryHost) => `${h.scheme}://${h.host}${h.path}`;
const caps = (h: RegistryHost) => [...h.capabilities];
const text = (buffers: Buffer[] | undefined) => buffers?.map((b) => b.toString());

describe('configureHosts: finding the host directory', () => {
  it.each([
    ['localhost:5000', ['localhost_5000_', 'localhost:5000', '_default'], 'localhost_5000_'],
    ['localhost:5000', ['localhost:5000', '_default'], 'localhost:5000'],
    ['localhost:5000', ['localhost', '_default'], '_default'],
    ['localhost:5000', ['_default'], '_default'],
    ['example.com', ['example.com', '_default'], 'example.com'],
    ['example.com', ['example.com_', '_default'], '_default'],
    ['[::1]:5000', ['[::1]_5000_', '[::1]:5000', '_default'], '[::1]_5000_'],
    ['[::1]:5000', ['[::1]:5000'], '[::1]:5000'],
  ])('for %s with directories %j uses %s', async (registry, dirs, used) => {
    write(Object.fromEntries(dirs.map((d) => [`${d}/hosts.toml`, `server = "https://${d.replace(/[^a-z0-9]/g, 'x')}.mirror"`])));
    const hosts = await hostsFor(registry);
    expect(hosts.map(url)).toEqual([`https://${used.replace(/[^a-z0-9]/g, 'x')}.mirror/v2`]);
  });

  it('merges nothing: the first directory found is used alone', async () => {
    write({
      'example.com/hosts.toml': '[host."https://mirror.example"]\ncapabilities = ["pull"]\n',
      '_default/hosts.toml': 'server = "https://elsewhere.example"\n[header]\nx-default = "1"\n',
    });
    const hosts = await hostsFor('example.com');
    expect(hosts.map(url)).toEqual(['https://mirror.example/v2', 'https://example.com/v2']);
    expect(hosts[1].headers).toEqual({});
  });

  it('ignores a file that has a candidate name', async () => {
    write({ 'example.com': 'not a directory', '_default/hosts.toml': 'server = "https://fallback.example"' });
    expect((await hostsFor('example.com')).map(url)).toEqual(['https://fallback.example/v2']);
  });

  it('gives only the default upstream when no directory matches, or without a hosts dir', async () => {
    write({ 'other.example/hosts.toml': 'server = "https://nope.example"' });
    expect((await hostsFor('example.com')).map(url)).toEqual(['https://example.com/v2']);
    expect((await configureHosts({ logger })('example.com')).map(url)).toEqual(['https://example.com/v2']);
  });

  it('reads hosts.toml again on every call', async () => {
    const resolve = configureHosts({ hostDir: root.path, logger });
    write({ 'example.com/hosts.toml': 'server = "https://one.example"' });
    expect((await resolve('example.com')).map(url)).toEqual(['https://one.example/v2']);
    write({ 'example.com/hosts.toml': 'server = "https://two.example"' });
    expect((await resolve('example.com')).map(url)).toEqual(['https://two.example/v2']);
  });

  it.each(['', '../etc', '..', 'a/b', 'example.com/', 'host:port', 'host:99999', '[not-ipv6]:5000', '5000', '1.2.3', 'a..b'])(
    'rejects the registry name %j with invalid argument',
    async (registry) => {
      const err = await rejectionOf(hostsFor(registry));
      expect(isInvalidArgument(err)).toBe(true);
      expect(err.message).toContain('invalid registry host');
    },
  );
});

describe('configureHosts: hosts.toml', () => {
  it('lists [host] tables in file order, then server', async () => {
    write({
      'docker.io/hosts.toml': `
server = "https://registry-1.docker.io"

[host."https://zeta.example"]
  capabilities = ["pull", "resolve"]

[host."https://alpha.example:5000"]
  capabilities = ["pull"]

[host."http://10.0.0.7:8080"]
  capabilities = ["pull"]

[host."https://zeta.example".header]
  x-late = "defined after the other tables"

[host."mirror.example"]
`,
    });
    const hosts = await hostsFor('docker.io');
    expect(hosts.map(url)).toEqual([
      'https://zeta.example/v2',
      'https://alpha.example:5000/v2',
      'http://10.0.0.7:8080/v2',
      'https://mirror.example/v2',
      'https://registry-1.docker.io/v2',
    ]);
    expect(hosts[0].headers).toEqual({ 'x-late': ['defined after the other tables'] });
    expect(hosts.every((h) => h.registry === 'docker.io')).toBe(true);
  });

  it.each([
    ['mirror.example', false, 'https://mirror.example/v2'],
    ['mirror.example:5000', false, 'https://mirror.example:5000/v2'],
    ['https://mirror.example/', false, 'https://mirror.example/v2'],
    ['https://mirror.example/v2', false, 'https://mirror.example/v2'],
    ['https://mirror.example/v2/', false, 'https://mirror.example/v2'],
    ['https://mirror.example/prefix', false, 'https://mirror.example/prefix/v2'],
    ['https://mirror.example//a/./b/../c/', false, 'https://mirror.example/a/c/v2'],
    ['http://mirror.example:8080/proxy/v2', false, 'http://mirror.example:8080/proxy/v2'],
    ['HTTPS://mirror.example', false, 'https://mirror.example/v2'],
    ['https://[::1]:5000', false, 'https://[::1]:5000/v2'],
    ['https://mirror.example/v2/namespace-prefix', true, 'https://mirror.example/v2/namespace-prefix'],
    ['https://mirror.example/api', true, 'https://mirror.example/api'],
    ['https://mirror.example', true, 'https://mirror.example'],
  ])('server %j with override_path=%j is %s, in server and in [host] keys', async (server, override, expected) => {
    write({
      'example.com/hosts.toml': `server = ${JSON.stringify(server)}\noverride_path = ${override}\n[host.${JSON.stringify(server)}]\noverride_path = ${override}\n`,
    });
    expect((await hostsFor('example.com')).map(url)).toEqual([expected, expected]);
  });

  it.each([
    ['["pull"]', ['pull']],
    ['["pull", "resolve"]', ['pull', 'resolve']],
    ['["push"]', ['push']],
    ['["PULL", "Referrers"]', ['pull', 'referrers']],
    ['["pull", "resolve", "push", "referrers"]', ALL],
    ['[]', ALL],
    [undefined, ALL],
  ])('capabilities = %s gives %j', async (value, expected) => {
    write({ 'example.com/hosts.toml': `[host."https://mirror.example"]\n${value === undefined ? '' : `capabilities = ${value}`}\n` });
    const [mirror, upstream] = await hostsFor('example.com');
    expect(caps(mirror)).toEqual(expected);
    expect(caps(upstream)).toEqual(ALL);
  });

  it('keeps the capabilities of an explicit server, but gives the default upstream all of them', async () => {
    write({ 'a.example/hosts.toml': 'server = "https://a.example"\ncapabilities = ["pull"]' });
    write({ 'b.example/hosts.toml': 'capabilities = ["pull"]' });
    expect((await hostsFor('a.example')).map(caps)).toEqual([['pull']]);
    expect((await hostsFor('b.example')).map(caps)).toEqual([ALL]);
  });

  it('reads CA files, relative paths from the host directory', async () => {
    write({
      'example.com/ca.pem': CA_1,
      'example.com/certs/extra.pem': `some text first\n${CA_2}${KEY}`,
      'elsewhere/abs.pem': CA_2,
      'example.com/hosts.toml': `
ca = "ca.pem"
[host."https://mirror.example"]
ca = ["${join(root.path, 'elsewhere/abs.pem')}", "certs/extra.pem", "./ca.pem"]
`,
    });
    const [mirror, upstream] = await hostsFor('example.com');
    // Only the CERTIFICATE blocks are kept: a key next to a CA is not a CA.
    expect(text(mirror.tls?.ca)).toEqual([CA_2, CA_2, CA_1]);
    expect(text(upstream.tls?.ca)).toEqual([CA_1]);
  });

  it('reads client pairs, and the key from the cert file when the key path is empty', async () => {
    write({
      'example.com/combined.pem': `${CERT}${CA_1}${EC_KEY}`,
      'example.com/client.cert': CERT,
      'example.com/client.key': KEY,
      'example.com/hosts.toml': `
[host."https://one.example"]
client = "combined.pem"
[host."https://two.example"]
client = ["combined.pem", "combined.pem"]
[host."https://three.example"]
client = [["client.cert", "client.key"], ["combined.pem", ""], "combined.pem"]
`,
    });
    const hosts = await hostsFor('example.com');
    const pairs = hosts.map((h) => h.tls?.clientCerts?.map((p) => [p.cert.toString(), p.key.toString()]));
    const combined = [`${CERT}${CA_1}`, EC_KEY];
    expect(pairs).toEqual([[combined], [combined, combined], [[CERT, KEY], combined, combined], undefined]);
  });

  it.each([
    ['ca = "missing.pem"', 'ca: cannot read', 'missing.pem'],
    ['ca = "key.pem"', 'ca: no PEM CERTIFICATE block', 'key.pem'],
    ['client = "cert.pem"', 'client: no PEM PRIVATE KEY block', 'cert.pem'],
    ['client = [["cert.pem", "missing.key"]]', 'client: cannot read', 'missing.key'],
    ['client = [["key.pem", "key.pem"]]', 'client: no PEM CERTIFICATE block', 'key.pem'],
  ])('rejects %s with invalid argument naming the file and key', async (setting, problem, path) => {
    write({ 'example.com/key.pem': KEY, 'example.com/cert.pem': CERT, 'example.com/hosts.toml': `[host."https://m.example"]\n${setting}\n` });
    const err = await rejectionOf(hostsFor('example.com'));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain(`hosts.toml ${join(root.path, 'example.com/hosts.toml')}: host."https://m.example".${problem}`);
    expect(err.message).toContain(JSON.stringify(join(root.path, 'example.com', path)));
  });

  it('sets skip_verify only where it is given', async () => {
    write({
      'example.com/hosts.toml': `
skip_verify = true
[host."https://a.example"]
skip_verify = false
[host."https://b.example"]
`,
    });
    expect((await hostsFor('example.com')).map((h) => h.tls)).toEqual([{ skipVerify: false }, undefined, { skipVerify: true }]);
  });

  it('reads headers as a string or an array of strings, after the caller-wide headers', async () => {
    write({
      'example.com/hosts.toml': `
[header]
x-top = "top"
[host."https://mirror.example".header]
x-one = "1"
x-many = ["a", "b"]
X-Caller = "from the file"
`,
    });
    const hosts = await hostsFor('example.com', { headers: { 'x-caller': 'from the caller' } });
    expect(hosts.map((h) => h.headers)).toEqual([
      { 'x-caller': ['from the caller', 'from the file'], 'x-one': ['1'], 'x-many': ['a', 'b'] },
      { 'x-caller': ['from the caller'], 'x-top': ['top'] },
    ]);
  });

  it.each([
    ['dial_timeout = "1s"', 1000],
    ['dial_timeout = "500ms"', 500],
    ['dial_timeout = "1m30s"', 90_000],
    ['dial_timeout = ""', 250],
    ['', 250],
  ])('%s gives dialTimeoutMs %d (250 from the options otherwise)', async (setting, ms) => {
    write({ 'example.com/hosts.toml': `[host."https://mirror.example"]\n${setting}\n` });
    const [mirror] = await hostsFor('example.com', { dialTimeoutMs: 250 });
    expect(mirror.dialTimeoutMs).toBe(ms);
  });

  it('leaves dialTimeoutMs unset when neither the file nor the options give one', async () => {
    write({ 'example.com/hosts.toml': `server = "https://example.com"` });
    const [upstream] = await hostsFor('example.com');
    expect(upstream).not.toHaveProperty('dialTimeoutMs');
  });

  it('applies top-level settings to the default upstream when there is no server', async () => {
    write({
      'example.com/ca.pem': CA_1,
      'example.com/hosts.toml': `
ca = "ca.pem"
dial_timeout = "2s"
[header]
x-top = "1"
[host."https://mirror.example"]
capabilities = ["pull"]
`,
    });
    const [mirror, upstream] = await hostsFor('example.com');
    expect(mirror.tls).toBeUndefined();
    expect(mirror.headers).toEqual({});
    expect(url(upstream)).toBe('https://example.com/v2');
    expect(text(upstream.tls?.ca)).toEqual([CA_1]);
    expect(upstream.headers).toEqual({ 'x-top': ['1'] });
    expect(upstream.dialTimeoutMs).toBe(2000);
  });

  it.each([
    ['http://mirror.example:5000', 'ca = "ca.pem"', 'https://mirror.example:5000/v2', true],
    ['http://mirror.example:5000', 'skip_verify = false', 'https://mirror.example:5000/v2', true],
    ['http://mirror.example', 'skip_verify = true', 'https://mirror.example/v2', true],
    ['http://mirror.example:80', 'ca = "ca.pem"', 'http://mirror.example:80/v2', false],
    ['http://mirror.example:5000', '', 'http://mirror.example:5000/v2', false],
    ['https://mirror.example:5000', 'ca = "ca.pem"', 'https://mirror.example:5000/v2', false],
  ])('%s with %j is %s, falling back to http: %j', async (server, setting, expected, fallback) => {
    write({ 'example.com/ca.pem': CA_1, 'example.com/hosts.toml': `[host."${server}"]\n${setting}\n` });
    const [mirror] = await hostsFor('example.com');
    expect(url(mirror)).toBe(expected);
    expect(mirror.fallbackToHttp ?? false).toBe(fallback);
    expect(logged.some((l) => l.msg.includes('try https first'))).toBe(fallback);
  });

  it('warns about keys it does not know and ignores them', async () => {
    write({ 'example.com/hosts.toml': 'skip-verify = true\n[host."https://m.example"]\nserver = "x"\nskip_verify = true\n' });
    const hosts = await hostsFor('example.com');
    expect(hosts.map((h) => h.tls)).toEqual([{ skipVerify: true }, undefined]);
    expect(logged).toEqual([
      { msg: 'ignoring unknown keys in hosts.toml', fields: { level: 'warn', file: join(root.path, 'example.com/hosts.toml'), keys: ['host."https://m.example".server', 'skip-verify'] } },
    ]);
  });
});

describe('configureHosts: a hosts.toml with an error is logged and treated as missing', () => {
  it.each([
    ['syntax', 'server = ', 'line 1, column'],
    ['unknown capability', '[host."https://m.example"]\ncapabilities = ["pull", "delete"]', 'host."https://m.example".capabilities: unknown capability "delete"'],
    ['capabilities not an array', 'capabilities = "pull"', 'capabilities: expected an array of strings, got a string'],
    ['server type', 'server = 1', 'server: expected a string, got an integer'],
    ['server scheme', 'server = "ftp://m.example"', 'server: "ftp://m.example" is not an http or https URL'],
    ['server host', 'server = "https://m example"', 'server: "https://m example" has no valid host[:port]'],
    ['numeric host key', '[host."https://a.example"]\n[host."5000"]', 'host."5000": "5000" has no valid host[:port]'],
    ['host type', 'host = "https://m.example"', 'host: expected a table of [host."<url>"] tables, got a string'],
    ['host entry type', 'host."https://m.example" = 1', 'host."https://m.example": expected a table, got an integer'],
    ['ca type', 'ca = 1', 'ca: expected a string or an array of strings, got an integer'],
    ['ca array type', 'ca = ["a.pem", 2]', 'ca: expected an array of strings, got an array'],
    ['client type', 'client = true', 'client: expected a path, an array of paths or an array of [cert, key] pairs, got a boolean'],
    ['client pair length', 'client = [["a.cert"]]', 'client: a pair needs exactly 2 paths, [cert, key], got 1'],
    ['client item type', 'client = [{ cert = "a" }]', 'client: expected a path or a [cert, key] pair, got a table'],
    ['client empty path', 'client = ""', 'client: an empty path'],
    ['skip_verify type', 'skip_verify = "yes"', 'skip_verify: expected a boolean, got a string'],
    ['override_path type', 'override_path = 1', 'override_path: expected a boolean, got an integer'],
    ['header type', 'header = "x"', 'header: expected a table, got a string'],
    ['header value type', '[header]\nx-n = 1', 'header."x-n": expected a string or an array of strings, got an integer'],
    ['header name', '[header]\n"bad name" = "v"', 'header."bad name": not a valid header name'],
    ['header value', '[header]\nx-v = "a\\r\\nb"', 'header."x-v": a header value must not contain CR, LF or NUL'],
    ['dial_timeout type', 'dial_timeout = 5', 'dial_timeout: expected a duration string such as "1s", got an integer'],
    ['dial_timeout text', 'dial_timeout = "5 seconds"', 'dial_timeout: "5 seconds" is not a non-negative duration'],
    ['dial_timeout negative', 'dial_timeout = "-1s"', 'dial_timeout: "-1s" is not a non-negative duration'],
  ])('%s', async (_, toml, problem) => {
    const file = join(root.path, 'example.com/hosts.toml');
    write({ 'example.com/hosts.toml': `${toml}\n`, 'example.com/ca.crt': CA_1 });
    const hosts = await hostsFor('example.com');
    // Treated as missing: the directory is read in the certs.d layout.
    expect(hosts.map(url)).toEqual(['https://example.com/v2']);
    expect(text(hosts[0].tls?.ca)).toEqual([CA_1]);

    expect(logged).toHaveLength(1);
    const { msg, fields } = logged[0];
    expect(msg).toBe('failed to decode hosts.toml, using the certificate files in its directory instead');
    expect(fields).toMatchObject({ level: 'error', file });
    const err = fields!.error as Error;
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain(`hosts.toml ${file}: ${problem}`);
  });
});

describe('configureHosts: certs.d layout', () => {
  it.each([
    ['no hosts.toml', undefined],
    ['an empty hosts.toml', ''],
  ])('reads *.crt as CAs and *.cert with *.key as client pairs with %s', async (_, hostsToml) => {
    write({
      'example.com:5000/b.crt': CA_2,
      'example.com:5000/a.crt': CA_1,
      'example.com:5000/ignored.pem': CA_1,
      'example.com:5000/client.cert': CERT,
      'example.com:5000/client.key': KEY,
      'example.com:5000/lonely.key': KEY,
      'example.com:5000/combined.cert': `${CERT}${KEY}`,
      'example.com:5000/dir.crt/inner': 'a directory named like a CA',
      ...(hostsToml === undefined ? {} : { 'example.com:5000/hosts.toml': hostsToml }),
    });
    const hosts = await hostsFor('example.com:5000');
    expect(hosts.map(url)).toEqual(['https://example.com:5000/v2']);
    expect(caps(hosts[0])).toEqual(ALL);
    expect(text(hosts[0].tls?.ca)).toEqual([CA_1, CA_2]);
    expect(hosts[0].tls?.clientCerts?.map((p) => [p.cert.toString(), p.key.toString()])).toEqual([
      [CERT, KEY],
      [CERT, KEY],
    ]);
    expect(hosts[0].tls?.skipVerify).toBeUndefined();
    expect(logged).toEqual([]);
  });

  it('has no TLS settings for a directory without certificate files', async () => {
    write({ 'example.com/readme.txt': 'nothing here' });
    const [upstream] = await hostsFor('example.com');
    expect(upstream.tls).toBeUndefined();
  });

  it('rejects a .cert without a key file and without a key inside', async () => {
    write({ 'example.com/client.cert': CERT });
    const err = await rejectionOf(hostsFor('example.com'));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain(`certs.d directory ${join(root.path, 'example.com')}: client: no PEM PRIVATE KEY block`);
  });
});

describe('configureHosts: the default upstream', () => {
  it.each([
    // registry, defaultScheme, url, skipVerify, fallbackToHttp
    ['docker.io', undefined, 'https://registry-1.docker.io/v2', undefined, false],
    ['docker.io', 'http', 'https://registry-1.docker.io/v2', undefined, false],
    ['example.com', undefined, 'https://example.com/v2', undefined, false],
    ['example.com:5000', undefined, 'https://example.com:5000/v2', undefined, false],
    ['example.com', 'http', 'http://example.com/v2', undefined, false],
    ['example.com', 'https', 'https://example.com/v2', undefined, false],
    ['localhost', undefined, 'https://localhost/v2', true, false],
    ['localhost:443', undefined, 'https://localhost:443/v2', true, false],
    ['localhost:80', undefined, 'http://localhost:80/v2', undefined, false],
    ['localhost:5000', undefined, 'https://localhost:5000/v2', true, true],
    ['LocalHost:5000', undefined, 'https://localhost:5000/v2', true, true],
    ['localhost:5000', 'http', 'http://localhost:5000/v2', undefined, false],
    ['localhost:5000', 'https', 'https://localhost:5000/v2', undefined, false],
    ['127.0.0.1:5000', undefined, 'https://127.0.0.1:5000/v2', true, true],
    ['127.0.0.254:5000', undefined, 'https://127.0.0.254:5000/v2', true, true],
    ['127.0.0.254', undefined, 'https://127.0.0.254/v2', true, false],
    ['[::1]:5000', undefined, 'https://[::1]:5000/v2', true, true],
    ['[::1]', undefined, 'https://[::1]/v2', true, false],
    ['::1', undefined, 'https://[::1]/v2', true, false],
    ['[0:0:0:0:0:0:0:1]:80', undefined, 'http://[0:0:0:0:0:0:0:1]:80/v2', undefined, false],
    ['[::ffff:127.0.0.1]:5000', undefined, 'https://[::ffff:127.0.0.1]:5000/v2', true, true],
    ['128.0.0.1:5000', undefined, 'https://128.0.0.1:5000/v2', undefined, false],
    ['[::2]:5000', undefined, 'https://[::2]:5000/v2', undefined, false],
    ['localhost.example:5000', undefined, 'https://localhost.example:5000/v2', undefined, false],
  ] as const)('%s with defaultScheme %s is %s (skip_verify %s, fallback to http %s)', async (registry, defaultScheme, expected, skipVerify, fallback) => {
    const hosts = await configureHosts({ defaultScheme, logger })(registry);
    expect(hosts).toHaveLength(1);
    expect(url(hosts[0])).toBe(expected);
    expect(hosts[0].registry).toBe(registry);
    expect(caps(hosts[0])).toEqual(ALL);
    expect(hosts[0].tls?.skipVerify).toBe(skipVerify);
    expect(hosts[0].fallbackToHttp ?? false).toBe(fallback);
    expect(hosts[0].headers).toEqual({});
  });

  it('lets an explicit top-level skip_verify override the loopback default', async () => {
    write({ 'localhost_5000_/hosts.toml': 'skip_verify = false\n' });
    const [upstream] = await hostsFor('localhost:5000');
    expect(url(upstream)).toBe('https://localhost:5000/v2');
    expect(upstream.tls).toEqual({ skipVerify: false });
    expect(upstream.fallbackToHttp).toBe(true);
  });

  it('passes the caller-wide headers and dial timeout to the default upstream', async () => {
    const [upstream] = await configureHosts({ headers: { 'user-agent': 'berth/test' }, dialTimeoutMs: 1500, logger })('docker.io');
    expect(upstream.headers).toEqual({ 'user-agent': ['berth/test'] });
    expect(upstream.dialTimeoutMs).toBe(1500);
  });
});

describe('nsParam', () => {
  const endpoint = (registry: string, host: string): RegistryHost => ({
    registry,
    host,
    scheme: 'https',
    path: '/v2',
    capabilities: new Set(ALL as Array<'pull'>),
    headers: {},
  });

  it.each([
    ['docker.io', 'registry-1.docker.io', undefined],
    ['docker.io', 'docker.io', undefined],
    ['registry-1.docker.io', 'docker.io', undefined],
    ['docker.io', 'mirror.gcr.io', 'docker.io'],
    ['docker.io', 'registry-1.docker.io:443', 'docker.io'],
    ['ghcr.io', 'ghcr.io', undefined],
    ['GHCR.io', 'ghcr.io', undefined],
    ['ghcr.io', 'registry-1.docker.io', 'ghcr.io'],
    ['localhost:5000', 'localhost:5000', undefined],
    ['localhost:5000', 'localhost:5001', 'localhost:5000'],
    ['localhost:5000', 'localhost', 'localhost:5000'],
    ['::1', '[::1]', undefined],
    ['[::1]:5000', '[::1]:5000', undefined],
  ])('for registry %s at host %s is %j', (registry, host, expected) => {
    expect(nsParam(endpoint(registry, host))).toBe(expected);
  });

  it('asks for ?ns= on mirrors from hosts.toml, not on the registry itself', async () => {
    write({ 'docker.io/hosts.toml': '[host."https://mirror.example"]\n' });
    const hosts = await hostsFor('docker.io');
    expect(hosts.map(nsParam)).toEqual(['docker.io', undefined]);
  });
});
