import fs = require('node:fs');
import type { Writable } from 'node:stream';
import { Descriptor, ImageManifest, MediaType } from '../oci/image-spec';
import type { BlobStore } from './blobs';
import { DOCKER_MANIFEST_FILE, dockerManifestEntry } from './formats/docker-save';
import { OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION, indexEntry, ociIndex } from './formats/oci-layout';
import { blobPath } from './formats/source-image';
import type { ImageRecord } from './image-records';
import type { TarHeader } from './tar/reader';
import { TarWriter } from './tar/writer';

/**
 * An image about to be saved, with its blobs open: once open, a blob's
 * content stays readable even if an rmi unlinks it meanwhile.
 */
export class SavedImage {
  private constructor(
    readonly manifest: Descriptor,
    readonly manifestData: Buffer,
    readonly config: { digest: string; fd: number; size: number },
    readonly layers: { digest: string; fd: number; size: number }[],
    readonly tags: string[],
  ) {}

  static open(blobs: BlobStore, record: ImageRecord, manifest: ImageManifest, manifestData: Buffer, tags: string[]): SavedImage {
    const opened: { digest: string; fd: number; size: number }[] = [];
    try {
      for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
        const fd = fs.openSync(blobs.path(digest), 'r');
        opened.push({ digest, fd, size: fs.fstatSync(fd).size });
      }
    } catch (err) {
      opened.forEach((blob) => fs.closeSync(blob.fd));
      throw err;
    }
    // A manifest without its own mediaType (optional before image-spec 1.1) is typed by its config's.
    const mediaType = manifest.mediaType ?? (manifest.config.mediaType === MediaType.dockerConfig ? MediaType.dockerManifest : MediaType.ociManifest);
    const descriptor = { mediaType, digest: record.manifest, size: manifestData.length };
    return new SavedImage(descriptor, manifestData, opened[0], opened.slice(1), tags);
  }

  close(): void {
    for (const blob of [this.config, ...this.layers]) {
      if (blob.fd < 0) continue;
      fs.closeSync(blob.fd);
      blob.fd = -1;
    }
  }
}

/** Entries are written with fixed owner and time, so saving the same images twice gives the same archive. */
function entry(name: string, type: 'file' | 'directory', size: number): TarHeader {
  return {
    name,
    type,
    mode: type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size,
    mtime: 0,
    linkname: '',
    devmajor: 0,
    devminor: 0,
    uname: '',
    gname: '',
    xattrs: new Map(),
  };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/**
 * Writes an OCI image layout archive (oci-layout, index.json with one entry
 * per tag, blobs/sha256/...) with Docker's manifest.json beside it, as
 * Docker 25+ saves: skopeo and podman read the first, older Dockers the
 * second. Each blob is written once however many images share it.
 */
export async function writeImageArchive(images: SavedImage[], output: Writable): Promise<void> {
  const tar = new TarWriter(output);
  const index = ociIndex(images.flatMap((image) => (image.tags.length > 0 ? image.tags.map((tag) => indexEntry(image.manifest, tag)) : [indexEntry(image.manifest, undefined)])));
  const dockerManifest = images.map((image) => dockerManifestEntry(blobPath(image.config.digest), image.layers.map((l) => blobPath(l.digest)), image.tags));
  const documents: [string, Buffer][] = [
    [OCI_LAYOUT_FILE, json({ imageLayoutVersion: OCI_LAYOUT_VERSION })],
    ['index.json', json(index)],
    [DOCKER_MANIFEST_FILE, json(dockerManifest)],
  ];
  for (const [name, data] of documents) await tar.add(entry(name, 'file', data.length), data);
  await tar.add(entry('blobs/', 'directory', 0));
  await tar.add(entry('blobs/sha256/', 'directory', 0));
  const written = new Set<string>();
  for (const image of images) {
    if (!written.has(image.manifest.digest)) {
      written.add(image.manifest.digest);
      await tar.add(entry(blobPath(image.manifest.digest), 'file', image.manifestData.length), image.manifestData);
    }
    for (const blob of [image.config, ...image.layers]) {
      if (written.has(blob.digest)) continue;
      written.add(blob.digest);
      await tar.add(entry(blobPath(blob.digest), 'file', blob.size), fs.createReadStream('', { fd: blob.fd, start: 0, autoClose: false }));
    }
  }
  await tar.finish();
}
