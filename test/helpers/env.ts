/** Where global-setup put the shared fixtures; see global-setup.ts. */
export const FIXTURE_ENV = 'TSRUN_TEST_FIXTURES';

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
