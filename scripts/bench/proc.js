'use strict';
// Child processes for scripts/bench/start.js: every child it starts is
// tracked, so that an interrupted benchmark can stop exactly those (by pid).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const live = new Set();
let refusing = false;

/**
 * Runs a command to completion. Resolves { code, signal, stdout, stderr }
 * (code null when it could not be started); never rejects.
 * stdio: [stdin, stdout, stderr] with 'pipe' | 'ignore' | 'inherit'; piped
 * stdout/stderr are collected. A piped stdin is kept open (never written)
 * until the child exits, so the child can see this process die.
 */
function spawnP(cmd, args, { stdio = ['ignore', 'pipe', 'pipe'], cwd, env } = {}) {
  if (refusing) return new Promise(() => {});
  return new Promise((resolve) => {
    let settled = false;
    let stdout = '';
    let stderr = '';
    const child = spawnTracked(cmd, args, { stdio, cwd, env });
    const finish = (result) => {
      if (settled) return;
      settled = true;
      live.delete(child);
      resolve({ stdout, stderr, ...result });
    };
    child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.stdin?.on('error', () => {});
    child.on('error', (err) => finish({ code: null, signal: null, error: err, stderr: stderr || err.message }));
    child.on('close', (code, signal) => finish({ code, signal }));
  });
}

/** child_process.spawn, with the child tracked until it exits (see stopChildren). Null once stopping. */
function spawnTracked(cmd, args, options) {
  if (refusing) return null;
  const child = spawn(cmd, args, options);
  live.add(child);
  child.on('close', () => live.delete(child));
  child.on('error', () => live.delete(child));
  return child;
}

/** Stops every child still running: SIGTERM, then SIGKILL after `graceMs`. No new children start afterwards. */
async function stopChildren(graceMs = 3000) {
  refusing = true;
  const children = [...live];
  const gone = (c) => c.exitCode !== null || c.signalCode !== null;
  for (const child of children) if (!gone(child)) child.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (children.some((c) => !gone(c)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const child of children) if (!gone(child)) child.kill('SIGKILL');
  const hardDeadline = Date.now() + 1000;
  while (children.some((c) => !gone(c)) && Date.now() < hardDeadline) await new Promise((r) => setTimeout(r, 50));
}

/** Absolute path of an executable found in $PATH, or null. */
function which(name) {
  for (const dir of (process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The first non-empty line of a command's stderr, for "n/a (reason: ...)". */
function firstLine(text, fallback = '') {
  const line = String(text || '')
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  return line || fallback;
}

/** Quotes an argument for hyperfine's command line (split with shell-words rules). */
function shellQuote(arg) {
  return /^[A-Za-z0-9_\-+=.,:/@%{}]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

module.exports = { spawnP, spawnTracked, stopChildren, which, firstLine, shellQuote, liveChildren: () => [...live] };
