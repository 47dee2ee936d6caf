import fs = require('node:fs');
import path = require('node:path');

/** Bytes in the regular files under `dir` (0 if it is gone), as `du --apparent-size` counts them. */
export function treeSize(dir: string): number {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) total += treeSize(file);
    else if (entry.isFile()) total += fs.lstatSync(file).size;
  }
  return total;
}
