import * as fs from 'node:fs';
import { FIXTURE_ENV } from './env';

export default function globalTeardown(): void {
  const dir = process.env[FIXTURE_ENV];
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
