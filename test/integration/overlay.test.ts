import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detachOverlay, mountOverlay, overlayOptions } from '../../src/linux/overlay';
import { createContainerLayers, createShortLink, overlayRoot, removeContainerLayers, removeLayerDir } from '../../src/storage/container-layers';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';

describeAsRoot('container layers over image layers', () => {
  const tmp = useTempDir('tsrun-overlay-');
  checkLeaksAfterEach();
  const mounted: string[] = [];
  afterEach(() => {
    for (const merged of mounted.splice(0)) detachOverlay(merged);
  });

  /** An image layer as the store keeps it: overlay2/<name>/diff plus a short link. */
  function imageLayer(root: string, name: string, fill: (diff: string) => void): string {
    const diff = path.join(overlayRoot(root), name, 'diff');
    fs.mkdirSync(diff, { recursive: true });
    fill(diff);
    return createShortLink(overlayRoot(root), name);
  }

  test('the container sees image + init layer; its writes land in its own layer only', () => {
    const root = fs.mkdtempSync(path.join(tmp(), 'store-'));
    const base = imageLayer(root, 'base', (diff) => execFileSync('cp', ['-a', `${busyboxRootfs()}/.`, diff]));
    const top = imageLayer(root, 'top', (diff) => {
      fs.mkdirSync(path.join(diff, 'etc'));
      fs.writeFileSync(path.join(diff, 'etc', 'motd'), 'from the top layer\n');
    });
    const id = 'c'.repeat(64);
    const layout = createContainerLayers(root, id, [base, top], { hostname: 'box', network: 'none', hostResolvConf: path.join(tmp(), 'none') });
    expect(layout.lower).toEqual([expect.stringMatching(/^l\/[A-Z2-7]{26}$/), `l/${top}`, `l/${base}`]);
    expect(fs.readFileSync(path.join(overlayRoot(root), id, 'lower'), 'utf8')).toBe(layout.lower.join(':'));

    mountOverlay(layout);
    mounted.push(layout.merged);
    const merged = layout.merged;
    expect(fs.existsSync(path.join(merged, 'bin', 'busybox'))).toBe(true);
    expect(fs.readFileSync(path.join(merged, 'etc', 'motd'), 'utf8')).toBe('from the top layer\n');
    expect(fs.readFileSync(path.join(merged, 'etc', 'hostname'), 'utf8')).toBe('box\n');
    expect(fs.readFileSync(path.join(merged, 'etc', 'resolv.conf'), 'utf8')).toMatch(/^nameserver 8\.8\.8\.8$/m);
    expect(fs.readFileSync(path.join(merged, 'etc', 'passwd'), 'utf8')).toMatch(/^tester:/m);

    fs.writeFileSync(path.join(merged, 'new-file'), 'x');
    fs.rmSync(path.join(merged, 'etc', 'motd'));
    const upper = path.join(overlayRoot(root), id, 'diff');
    expect(fs.readFileSync(path.join(upper, 'new-file'), 'utf8')).toBe('x');
    expect(fs.statSync(path.join(upper, 'etc', 'motd')).isCharacterDevice()).toBe(true);
    expect(fs.existsSync(path.join(overlayRoot(root), 'top', 'diff', 'etc', 'motd'))).toBe(true);

    detachOverlay(merged);
    mounted.pop();
    removeContainerLayers(root, id);
    expect(fs.readdirSync(overlayRoot(root)).sort()).toEqual(['base', 'l', 'top']);
    expect(fs.readdirSync(path.join(overlayRoot(root), 'l')).sort()).toEqual([base, top].sort());
    removeLayerDir(overlayRoot(root), 'top');
    expect(fs.readdirSync(path.join(overlayRoot(root), 'l'))).toEqual([base]);
  });

  test('128 lower layers fit in one mount through the short links', () => {
    const root = fs.mkdtempSync(path.join(tmp(), 'store-'));
    const links: string[] = [];
    for (let i = 0; i < 127; i++) {
      links.push(imageLayer(root, `layer${String(i).padStart(3, '0')}`, (diff) => fs.writeFileSync(path.join(diff, `file${i}`), String(i))));
    }
    const id = 'd'.repeat(64);
    const layout = createContainerLayers(root, id, links, { hostname: 'many', network: 'none' });
    expect(layout.lower).toHaveLength(128);
    expect(overlayOptions(layout).length).toBeLessThan(4096);
    mountOverlay(layout);
    mounted.push(layout.merged);
    expect(fs.readFileSync(path.join(layout.merged, 'file0'), 'utf8')).toBe('0');
    expect(fs.readFileSync(path.join(layout.merged, 'file126'), 'utf8')).toBe('126');
    detachOverlay(layout.merged);
    mounted.pop();
    removeContainerLayers(root, id);
  });

  test('too many layers for one page is refused with the numbers', () => {
    const lower = Array.from({ length: 200 }, (_, i) => `l/${String(i).padStart(26, 'A')}`);
    expect(() => overlayOptions({ base: '/x', lower, upper: 'u/diff', work: 'u/work', merged: '/x/m' })).toThrow(/200 layers make a \d+-byte option string; the kernel takes at most 4095/);
  });
});
