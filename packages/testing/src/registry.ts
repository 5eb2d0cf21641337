import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID, sign } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, get as httpGet, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './temp';

/** Debian's docker-registry (distribution 2.8), the registry the client tests run against. */
export const DOCKER_REGISTRY_PATH = '/usr/bin/docker-registry';

/** Options of {@link TestRegistry.start}. */
export interface TestRegistryOptions {
  /**
   * Serve https with a certificate from a CA made for this registry (SANs 127.0.0.1 and
   * localhost); `requireClientCert` also makes it demand a client certificate from that CA.
   */
  tls?: boolean | { requireClientCert?: boolean };
  /** Require authentication: `basic` (htpasswd) or `token` (bearer tokens from an in-process token server). */
  auth?: TestRegistryAuth;
  /** Milliseconds until startup fails. Default 15 000. */
  timeoutMs?: number;
}

/** Authentication of a {@link TestRegistry}. */
export interface TestRegistryAuth {
  kind: 'basic' | 'token';
  username: string;
  password: string;
  /** Token lifetime the token server announces (`expires_in`), in seconds. Default 300. */
  tokenTtlSeconds?: number;
  /** Field the token server puts the token in. Default `token`. */
  tokenField?: 'token' | 'access_token';
  /** A refresh token the token server accepts for the OAuth2 refresh_token grant (POST). */
  refreshToken?: string;
}

/** PEM material of a TLS {@link TestRegistry}. */
export interface TestRegistryCerts {
  /** The CA that signed the server (and client) certificates. */
  ca: Buffer;
  /** A client certificate and key from the same CA. */
  clientCert: Buffer;
  clientKey: Buffer;
}

/** One request the token server saw. */
export interface TokenRequestRecord {
  method: string;
  /** Requested scopes (`repository:<name>:pull,push`). */
  scopes: string[];
  /** Who asked: the basic-auth user, `refresh-token`, or undefined for anonymous. */
  account?: string;
  /** Whether a token was issued. */
  granted: boolean;
}

const SERVICE = 'berth-test-registry';
const ISSUER = 'berth-test-issuer';

/**
 * A real registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1 with a temp storage
 * dir and a free port: plain HTTP, or TLS with a generated CA (optionally demanding client
 * certificates); open, basic auth through htpasswd, or bearer tokens from a token server run in
 * this process, which signs ES256 JWTs with an x5c chain the registry checks against its root
 * bundle and counts its requests. {@link stop} ends the process by pid and removes everything.
 */
export class TestRegistry {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private logs = '';
  private tokenServer?: Server;
  /** Requests the token server answered, in order. */
  readonly tokenRequests: TokenRequestRecord[] = [];
  private address = '';
  private tlsMaterial?: TestRegistryCerts;

  private constructor(
    /** The temp directory holding config, storage, certificates. */
    readonly dir: string,
    private readonly options: TestRegistryOptions,
  ) {}

  /** host:port the registry listens on (127.0.0.1:<port>). */
  get host(): string {
    return this.address;
  }

  /** TLS material, for a TLS registry. */
  get certs(): TestRegistryCerts | undefined {
    return this.tlsMaterial;
  }

  /** `http://127.0.0.1:<port>` or `https://…`. */
  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://${this.host}`;
  }

  /** The registry's log output so far, for failure messages. */
  get output(): string {
    return this.logs;
  }

  /** The registry's pid. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts a registry and waits until `GET /v2/` answers (200, or 401 with auth). */
  static async start(options: TestRegistryOptions = {}): Promise<TestRegistry> {
    const dir = tempDir('berth-registry-').path;
    const r = new TestRegistry(dir, options);
    try {
      await r.launch();
    } catch (err) {
      await r.stop();
      throw err;
    }
    return r;
  }

  private async launch(): Promise<void> {
    const { dir, options } = this;
    const port = await freePort();
    this.address = `127.0.0.1:${port}`;
    const http: Record<string, unknown> = { addr: this.address, secret: randomUUID() };
    if (options.tls) {
      this.tlsMaterial = makeCerts(dir);
      const tls: Record<string, unknown> = { certificate: join(dir, 'server.crt'), key: join(dir, 'server.key') };
      if (typeof options.tls === 'object' && options.tls.requireClientCert) tls.clientcas = [join(dir, 'ca.crt')];
      http.tls = tls;
    }
    const config: Record<string, unknown> = {
      version: '0.1',
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: join(dir, 'data') },
        maintenance: { uploadpurging: { enabled: false } },
        delete: { enabled: true },
      },
      http,
    };
    if (options.auth?.kind === 'basic') {
      const line = execFileSync('htpasswd', ['-Bbn', options.auth.username, options.auth.password], { encoding: 'utf8' });
      writeFileSync(join(dir, 'htpasswd'), line.trim() + '\n');
      config.auth = { htpasswd: { realm: 'berth-test', path: join(dir, 'htpasswd') } };
    } else if (options.auth?.kind === 'token') {
      const signer = makeSigner(dir);
      const tokenPort = await this.startTokenServer(options.auth, signer);
      config.auth = {
        token: {
          realm: `http://127.0.0.1:${tokenPort}/token`,
          service: SERVICE,
          issuer: ISSUER,
          rootcertbundle: join(dir, 'token.crt'),
        },
      };
    }
    // YAML is a superset of JSON, so the config is written as JSON: no quoting surprises.
    const configPath = join(dir, 'config.yml');
    writeFileSync(configPath, JSON.stringify(config, null, 2));

    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
    const child = spawn(DOCKER_REGISTRY_PATH, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    child.stdout!.on('data', (b: Buffer) => (this.logs += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.logs += b.toString()));
    this.exited = new Promise((res) => child.once('exit', () => res()));

    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`docker-registry exited during startup:\n${this.logs}`);
      const status = await this.probe().catch(() => 0);
      if (status === 200 || status === 401) return;
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${this.url} in time:\n${this.logs}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** GET /v2/ once; resolves with the status. */
  private probe(): Promise<number> {
    return new Promise((resolve, reject) => {
      const done = (res: IncomingMessage) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      };
      const url = `${this.url}/v2/`;
      const req = this.certs
        ? httpsGet(url, { ca: this.certs.ca, cert: this.certs.clientCert, key: this.certs.clientKey }, done)
        : httpGet(url, done);
      req.on('error', reject);
      req.setTimeout(1000, () => req.destroy(new Error('probe timeout')));
    });
  }

  private async startTokenServer(auth: TestRegistryAuth, signer: Signer): Promise<number> {
    const server = createHttpServer((req, res) => {
      void this.answerToken(auth, signer, req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    this.tokenServer = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  private async answerToken(auth: TestRegistryAuth, signer: Signer, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://token');
    let scopes = url.searchParams.getAll('scope');
    let account: string | undefined;
    let ok = true;
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      if (form.get('grant_type') === 'refresh_token') {
        account = 'refresh-token';
        ok = auth.refreshToken !== undefined && form.get('refresh_token') === auth.refreshToken;
      } else if (form.get('grant_type') === 'password') {
        account = form.get('username') ?? '';
        ok = account === auth.username && form.get('password') === auth.password;
      } else {
        ok = false;
      }
    } else {
      const header = req.headers.authorization ?? '';
      if (header.startsWith('Basic ')) {
        const decoded = Buffer.from(header.slice(6), 'base64').toString();
        const colon = decoded.indexOf(':');
        account = decoded.slice(0, colon);
        ok = account === auth.username && decoded.slice(colon + 1) === auth.password;
      }
    }
    this.tokenRequests.push({ method: req.method ?? '', scopes, account, granted: ok });
    res.setHeader('Content-Type', 'application/json');
    if (!ok) {
      res.statusCode = 401;
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid credentials' }] }));
      return;
    }
    // Anonymous callers get a token without access, as public token servers do for private repositories.
    const access = account === undefined ? [] : scopes.map(parseScope).filter((a) => a !== undefined);
    const ttl = auth.tokenTtlSeconds ?? 300;
    const token = signer.jwt({ sub: account ?? '', access, ttl });
    res.end(JSON.stringify({ [auth.tokenField ?? 'token']: token, expires_in: ttl, issued_at: new Date().toISOString() }));
  }

  /** Stops the registry (by pid) and the token server, and removes the temp directory. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.tokenServer) {
      const server = this.tokenServer;
      this.tokenServer = undefined;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Finds a free TCP port on 127.0.0.1 (free when asked; the registry binds it right after). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Generates a CA, a server certificate for 127.0.0.1/localhost and a client certificate in `dir`. */
function makeCerts(dir: string): TestRegistryCerts {
  openssl(dir, [
    'req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Berth Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = (name: string, subject: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(dir, ['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(dir, [
      'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(Date.now()),
      '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`,
    ]);
  };
  issue(
    'server',
    '/CN=localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  issue('client', '/CN=berth-test-client', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  return {
    ca: readFileSync(join(dir, 'ca.crt')),
    clientCert: readFileSync(join(dir, 'client.crt')),
    clientKey: readFileSync(join(dir, 'client.key')),
  };
}

interface Signer {
  jwt(claims: { sub: string; access: Array<{ type: string; name: string; actions: string[] }>; ttl: number }): string;
}

/**
 * Makes the token signing key and its self-signed certificate (token.crt, the registry's
 * `rootcertbundle`). distribution 2.8 takes the key from the JWT's `x5c` chain and verifies that
 * chain against the bundle, so each token carries the certificate.
 */
function makeSigner(dir: string): Signer {
  openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', 'token.key', '-out', 'token.crt', '-days', '2', '-subj', '/CN=Berth Test Token Signer']);
  const key = readFileSync(join(dir, 'token.key'));
  const der = readFileSync(join(dir, 'token.crt'), 'utf8').replace(/-----[^-]+-----|\s/g, '');
  const b64url = (v: Buffer | string) => Buffer.from(v).toString('base64url');
  return {
    jwt({ sub, access, ttl }) {
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', x5c: [der] }));
      const claims = b64url(
        JSON.stringify({ iss: ISSUER, sub, aud: SERVICE, exp: now + ttl, nbf: now - 1, iat: now, jti: randomUUID(), access }),
      );
      const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
      return `${header}.${claims}.${b64url(signature)}`;
    },
  };
}

/** `repository:<name>:<a,b>` → an access claim; the name may itself contain ':'. */
function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}
