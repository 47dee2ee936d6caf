import * as fs from 'node:fs';
import * as path from 'node:path';
import { LayeredTree } from '../../src/build/layered-tree';
import { loadNative } from '../../src/native/index';
import { describeAsRoot, useTempDir } from '../helpers/fixtures';
import { writeTree } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';

describeAsRoot('LayeredTree: an image root filesystem read from its layers', () => {
  const tmp = useTempDir('tsrun-layered-tree-');
  let made = 0;
  checkLeaksAfterEach();

  /** Three layers, lowest first, with overlayfs's whiteouts and an opaque directory. */
  function layers(): string[] {
    const dir = path.join(tmp(), String(++made));
    const [base, middle, top] = ['base', 'middle', 'top'].map((name) => path.join(dir, name));
    writeTree(base, { 'etc/passwd': 'root\n', 'etc/group': 'g\n', 'data/a': 'a\n', 'data/b': 'b\n', 'real/file': 'real\n', 'gone/x': 'x\n', 'replaced/y': 'y\n' });
    fs.symlinkSync('/real', path.join(base, 'link'));
    fs.symlinkSync('../real', path.join(base, 'data', 'up'));
    writeTree(middle, { 'data/c': 'c\n', 'etc/passwd': 'root\nuser\n' });
    // A whiteout deletes etc/group; `gone` as a whole; data opaque hides a and b.
    loadNative().mknod(path.join(middle, 'etc', 'group'), fs.constants.S_IFCHR, 0, 0);
    loadNative().mknod(path.join(middle, 'gone'), fs.constants.S_IFCHR, 0, 0);
    writeTree(top, { 'data/d': 'd\n', replaced: 'now a file\n' });
    loadNative().lsetxattr(path.join(top, 'data'), 'trusted.overlay.opaque', Buffer.from('y'), 0);
    return [base, middle, top];
  }

  test('upper layers win; whiteouts delete; an opaque directory hides what is below; a file hides a directory', () => {
    const tree = new LayeredTree(layers());
    expect(tree.readFile('/etc/passwd')?.toString()).toBe('root\nuser\n');
    expect(tree.lstat('/etc/group')).toBeNull();
    expect(tree.readdir('/etc')).toEqual(['passwd']);
    expect(tree.readdir('/data')).toEqual(['d']);
    expect(tree.lstat('/data/a')).toBeNull();
    expect(tree.lstat('/gone')).toBeNull();
    expect(tree.lstat('/gone/x')).toBeNull();
    expect(tree.lstat('/replaced')?.stat.isFile()).toBe(true);
    expect(tree.lstat('/replaced/y')).toBeNull();
    expect(tree.readdir('/')).toEqual(['data', 'etc', 'link', 'real', 'replaced']);
  });

  test('symlinks resolve inside the tree, absolute and relative, never above its root', () => {
    const dirs = layers();
    const tree = new LayeredTree(dirs);
    expect(tree.resolve('/link/file')).toBe('/real/file');
    expect(tree.resolve('/link')).toBe('/link');
    expect(tree.resolve('/link', true)).toBe('/real');
    expect(tree.resolve('/../../link/../etc')).toBe('/etc');
    expect(tree.readFile('/link/file')?.toString()).toBe('real\n');
    // data/up is in the base layer, under the opaque data: hidden.
    expect(tree.resolve('/data/up/file')).toBe('/data/up/file');
    expect(new LayeredTree([dirs[0]]).resolve('/data/up/file')).toBe('/real/file');
    expect(tree.stat('/nothing/here')).toBeNull();
  });
});
