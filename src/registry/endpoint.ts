import fs = require('node:fs');
import net = require('node:net');
import path = require('node:path');
import tls = require('node:tls');

/**
 * How tsrun may talk to a registry host, by Docker's rules: HTTPS with the
 * system's CAs (plus Docker's per-registry `/etc/docker/certs.d/<host>/*.crt`);
 * an insecure registry (named with --insecure-registry, or on the loopback
 * interface, as Docker treats 127.0.0.0/8) is tried over HTTPS without
 * verifying its certificate, then over plain HTTP.
 */

/** Where distributions keep the system CA bundle; the first that exists is used. */
const SYSTEM_CA_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem', '/etc/ssl/cert.pem'];
const DOCKER_CERTS_DIR = '/etc/docker/certs.d';

/** `host:port` -> `host`, `[::1]:5000` -> `::1`. */
function hostname(host: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return bracketed[1];
  const colon = host.lastIndexOf(':');
  return colon > 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host;
}

function isLoopback(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (net.isIPv4(name)) return name.startsWith('127.');
  return net.isIPv6(name) && (name === '::1' || /^::ffff:127\./i.test(name));
}

/**
 * Whether `host` (`name[:port]`) may be reached without verified TLS. An
 * entry of `insecureRegistries` is a host, a `host:port` or a CIDR range
 * (`10.0.0.0/8`), as in Docker's daemon.json.
 */
export function isInsecureRegistry(host: string, insecureRegistries: readonly string[]): boolean {
  const name = hostname(host).toLowerCase();
  if (isLoopback(name)) return true;
  for (const entry of insecureRegistries.map((e) => e.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/\/$/, ''))) {
    if (entry === host.toLowerCase() || entry === name) return true;
    const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
    if (cidr && net.isIP(name) !== 0 && net.isIP(cidr[1]) === net.isIP(name)) {
      const ranges = new net.BlockList();
      ranges.addSubnet(cidr[1], Number(cidr[2]), net.isIPv6(name) ? 'ipv6' : 'ipv4');
      if (ranges.check(name, net.isIPv6(name) ? 'ipv6' : 'ipv4')) return true;
    }
  }
  return false;
}

let systemCAs: string[] | undefined;

/** Node's bundled roots, the system bundle and $NODE_EXTRA_CA_CERTS: passing `ca` replaces Node's defaults, so all are given. */
function trustedCAs(): string[] {
  if (systemCAs === undefined) {
    const files = [SYSTEM_CA_BUNDLES.find((f) => fs.existsSync(f)), process.env.SSL_CERT_FILE, process.env.NODE_EXTRA_CA_CERTS].filter((f): f is string => f !== undefined);
    systemCAs = [...tls.rootCertificates, ...files.map((f) => fs.readFileSync(f, 'utf8'))];
  }
  return systemCAs;
}

/** Docker's per-registry CA certificates: `/etc/docker/certs.d/<host[:port]>/*.crt`. */
function registryCAs(host: string, certsDir: string): string[] {
  const dir = path.join(certsDir, host);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => n.endsWith('.crt')).map((n) => fs.readFileSync(path.join(dir, n), 'utf8'));
}

/** TLS options for connections to `host`. */
export function tlsOptions(host: string, insecure: boolean, certsDir = DOCKER_CERTS_DIR): tls.ConnectionOptions {
  if (insecure) return { rejectUnauthorized: false };
  const extra = registryCAs(host, certsDir);
  return { rejectUnauthorized: true, ca: [...trustedCAs(), ...extra] };
}
