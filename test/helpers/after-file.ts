import { setSpareNetworkNamespace, spareNetworkNamespaceSettled } from '../../src/linux/spare-netns';

// Jest gives each test file its own module registry, but the files share
// one process: the spare network namespace a file's containers left (an fd
// of that file's copy of spare-netns.ts) would outlive the file, unseen by
// the next file's copy, and read as a leak there.
afterAll(async () => {
  await spareNetworkNamespaceSettled();
  setSpareNetworkNamespace(false);
});
