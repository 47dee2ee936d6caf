import { execFileSync } from 'node:child_process';
import { createSign, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as path from 'node:path';

/**
 * A token server for distribution's token auth (the flow Docker Hub uses),
 * on 127.0.0.1: it signs JWTs (RS256, with the certificate in x5c) that
 * the registry checks against `certificate`. Anonymous clients get pull
 * access only; `user` with `password` gets what it asks for; a wrong
 * password gets a 401 as Docker Hub's token server sends it.
 */
export class TokenServer {
  /** Every token request: the scopes asked for and the account, if any. */
  readonly requests: { scopes: string[]; account?: string; authenticated: boolean }[] = [];
  static readonly SERVICE = 'tsrun-test-registry';
  static readonly ISSUER = 'tsrun-test-issuer';

  private constructor(
    private readonly server: http.Server,
    readonly realm: string,
    readonly certificate: string,
  ) {}

  static async start(dir: string, user: string, password: string): Promise<TokenServer> {
    const key = path.join(dir, 'token.key');
    const certificate = path.join(dir, 'token.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, '-days', '1', '-subj', '/CN=tsrun-test-token'], { stdio: 'ignore' });
    const privateKey = fs.readFileSync(key, 'utf8');
    const der = Buffer.from(fs.readFileSync(certificate, 'utf8').replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    let instance: TokenServer | undefined;
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://token');
      const scopes = url.searchParams.getAll('scope');
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const [givenUser, givenPassword] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':') : [];
      instance?.requests.push({ scopes, account: url.searchParams.get('account') ?? undefined, authenticated: basic !== undefined });
      if (basic !== undefined && (givenUser !== user || givenPassword !== password)) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      const access = scopes.map((scope) => {
        const [type, name, actions] = scope.split(':');
        const granted = basic !== undefined ? actions.split(',') : actions.split(',').filter((a) => a === 'pull');
        return { type, name, actions: granted };
      });
      const now = Math.floor(Date.now() / 1000);
      const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
      const unsigned = `${encode({ alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] })}.${encode({
        iss: TokenServer.ISSUER,
        sub: basic !== undefined ? user : '',
        aud: url.searchParams.get('service'),
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomUUID(),
        access,
      })}`;
      const signature = createSign('RSA-SHA256').update(unsigned).sign(privateKey).toString('base64url');
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: `${unsigned}.${signature}`, expires_in: 300, issued_at: new Date().toISOString() }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    instance = new TokenServer(server, `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`, certificate);
    return instance;
  }

  /** Drops the connections clients left open. */
  async dropConnections(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
