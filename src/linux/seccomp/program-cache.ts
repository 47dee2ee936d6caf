import fs = require('node:fs');
import path = require('node:path');
import type { LinuxSeccomp } from '../../oci/runtime-spec';
import { writeFileAtomic } from '../../util/atomic-file';
import { noteOneTimeWork } from '../../util/one-time-work';
import { SeccompArch, compileSeccomp } from './bpf';

/**
 * Compiled seccomp programs kept across processes. Compiling Docker's
 * profile is the costliest step of a CLI start, which runs it cold (about
 * 20 M instructions), while most containers share a few profiles.
 *
 * One file holds the last few programs, newest first, each after its
 * whole input (this compiler's file, the architecture, the resolved
 * filter); a program is used only when its input equals the one asked
 * for. Comparing inputs whole leaves nothing to hash: a hash loop in JS
 * runs interpreted in a CLI process (~4 ms for Docker's profile), and
 * node:zlib's crc32 loads the stream modules. The directory is in the
 * runtime state (root's, on tmpfs: it starts empty after a reboot).
 */

const MAX_PROGRAM_BYTES = 4096 * 8;
const MAX_ENTRIES = 8;
const HEADER_BYTES = 8;

/** The cache's directory in a runtime state directory; the leading dot keeps it apart from container ids. */
export function seccompCacheDirIn(stateDir: string): string {
  return path.join(stateDir, '.seccomp-cache');
}

let compilerStamp: string | undefined;

/** The file this code runs from, with its size and mtime: a rebuilt tsrun has another. */
function compiler(): string {
  if (compilerStamp === undefined) {
    const stat = fs.statSync(__filename);
    compilerStamp = `${__filename} ${stat.size} ${stat.mtimeMs}`;
  }
  return compilerStamp;
}

interface Entry {
  input: Buffer;
  program: Buffer;
}

/** The file's entries, up to the first one that is damaged. */
function readEntries(file: string): Entry[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return [];
  }
  const entries: Entry[] = [];
  let at = 0;
  while (at + HEADER_BYTES <= bytes.length && entries.length < MAX_ENTRIES) {
    const inputBytes = bytes.readUInt32LE(at);
    const programBytes = bytes.readUInt32LE(at + 4);
    const inputStart = at + HEADER_BYTES;
    const programStart = inputStart + inputBytes;
    const end = programStart + programBytes;
    if (programBytes === 0 || programBytes % 8 !== 0 || programBytes > MAX_PROGRAM_BYTES || end > bytes.length) break;
    entries.push({ input: bytes.subarray(inputStart, programStart), program: bytes.subarray(programStart, end) });
    at = end;
  }
  return entries;
}

function writeEntries(dir: string, file: string, entries: Entry[]): void {
  const parts = entries.flatMap(({ input, program }) => {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(input.length, 0);
    header.writeUInt32LE(program.length, 4);
    return [header, input, program];
  });
  const bytes = Buffer.concat(parts);
  try {
    writeFileAtomic(file, bytes, { durable: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileAtomic(file, bytes, { durable: false });
    } catch {
      // Only a cache: the next start compiles again.
    }
  }
}

/** `seccomp` compiled for `arch`, from `dir` when an earlier process compiled the same. */
export function cachedSeccompProgram(seccomp: LinuxSeccomp, arch: SeccompArch, dir: string): Buffer {
  const input = Buffer.from(`${compiler()}\n${arch}\n${JSON.stringify(seccomp)}`);
  const file = path.join(dir, 'programs');
  const entries = readEntries(file);
  const hit = entries.find((entry) => entry.input.equals(input));
  if (hit) return hit.program;
  noteOneTimeWork();
  const { program } = compileSeccomp(seccomp, arch);
  writeEntries(dir, file, [{ input, program }, ...entries.slice(0, MAX_ENTRIES - 1)]);
  return program;
}
