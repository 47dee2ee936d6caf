import { spawnSync } from 'node:child_process';
import fs = require('node:fs');
import path = require('node:path');
import { NetworkError } from '../errors';

/**
 * The runtime's side of the Container Network Interface: plugins are
 * executables that get the command and the container in CNI_* variables
 * and their configuration on stdin, and answer with a result (or an
 * error) on stdout. A network configuration list runs its plugins in
 * order for ADD and CHECK, each receiving the result so far as
 * `prevResult`, and in reverse order for DEL.
 * See: https://github.com/containernetworking/cni/blob/main/SPEC.md
 */

export const CNI_VERSION = '1.0.0';

/** Where Debian's containernetworking-plugins and the upstream tarball put the plugins. */
const DEFAULT_PLUGIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

export interface PluginConfig {
  type: string;
  /** The runtime fills `runtimeConfig` with the keys a plugin declares here (portMappings...). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: PluginConfig[];
}

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

/** The container a command is about. `netns` may be empty for DEL (the namespace may be gone). */
export interface RuntimeTarget {
  containerId: string;
  netns: string;
  ifName: string;
  /** Values for the capabilities plugins declare: { portMappings: [...] }. */
  runtimeConfig?: Record<string, unknown>;
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

export function pluginDirs(): string[] {
  const fromEnv = process.env.TSRUN_CNI_PATH;
  return fromEnv ? fromEnv.split(':').filter(Boolean) : DEFAULT_PLUGIN_DIRS;
}

function findPlugin(list: NetworkConfigList, type: string, command: string): string {
  if (!/^[a-zA-Z0-9_.-]+$/.test(type)) throw new NetworkError(list.name, command, type, 'invalid plugin type');
  for (const dir of pluginDirs()) {
    const candidate = path.join(dir, type);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  throw new NetworkError(list.name, command, type, `plugin not found in ${pluginDirs().join(':')} (install containernetworking-plugins)`);
}

function pluginInput(list: NetworkConfigList, plugin: PluginConfig, target: RuntimeTarget, prevResult: CniResult | undefined): string {
  const { capabilities, ...rest } = plugin;
  const runtimeConfig = Object.fromEntries(Object.entries(target.runtimeConfig ?? {}).filter(([key]) => capabilities?.[key]));
  return JSON.stringify({
    ...rest,
    cniVersion: list.cniVersion,
    name: list.name,
    ...(Object.keys(runtimeConfig).length > 0 ? { runtimeConfig } : {}),
    ...(prevResult ? { prevResult } : {}),
  });
}

/**
 * Runs one plugin. Synchronous on purpose: ADD runs while the container's
 * first process waits at its sync point, inside spawnContainer.
 */
export function invokePlugin(list: NetworkConfigList, plugin: PluginConfig, command: CniCommand, target: RuntimeTarget, prevResult?: CniResult): CniResult | undefined {
  const executable = findPlugin(list, plugin.type, command);
  const result = spawnSync(executable, [], {
    input: pluginInput(list, plugin, target, prevResult),
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: target.containerId,
      CNI_NETNS: target.netns,
      CNI_IFNAME: target.ifName,
      CNI_PATH: pluginDirs().join(':'),
    },
  });
  if (result.error) throw new NetworkError(list.name, command, plugin.type, result.error.message, undefined, { cause: result.error });
  const stdout = result.stdout.trim();
  if (result.status !== 0) {
    let reported: { code?: number; msg?: string; details?: string } = {};
    try {
      reported = JSON.parse(stdout) as typeof reported;
    } catch {
      // Not a CNI error result: stderr says what went wrong.
    }
    const message = [reported.msg, reported.details].filter(Boolean).join(': ') || result.stderr.trim() || `exited with status ${result.status}`;
    throw new NetworkError(list.name, command, plugin.type, message, reported.code);
  }
  if (command !== 'ADD') return undefined;
  try {
    return JSON.parse(stdout) as CniResult;
  } catch {
    throw new NetworkError(list.name, command, plugin.type, `invalid result: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
}

/** ADD: each plugin in order; if one fails, DEL undoes the ones before it, as libcni does. */
export function addNetworkList(list: NetworkConfigList, target: RuntimeTarget): CniResult {
  let result: CniResult | undefined;
  for (const plugin of list.plugins) {
    try {
      result = invokePlugin(list, plugin, 'ADD', target, result) ?? result;
    } catch (err) {
      try {
        deleteNetworkList(list, target, result);
      } catch {
        // The ADD's failure is the one to report.
      }
      throw err;
    }
  }
  if (!result) throw new NetworkError(list.name, 'ADD', list.plugins[0]?.type ?? '-', 'the configuration list has no plugin');
  return result;
}

/** DEL: every plugin in reverse order, even after one fails (the first failure is thrown at the end). */
export function deleteNetworkList(list: NetworkConfigList, target: RuntimeTarget, cached: CniResult | undefined): void {
  let first: unknown;
  for (const plugin of [...list.plugins].reverse()) {
    try {
      invokePlugin(list, plugin, 'DEL', target, cached);
    } catch (err) {
      first ??= err;
    }
  }
  if (first) throw first;
}

/** CHECK: each plugin in order against the cached result; throws what the first failing plugin reports. */
export function checkNetworkList(list: NetworkConfigList, target: RuntimeTarget, cached: CniResult): void {
  for (const plugin of list.plugins) invokePlugin(list, plugin, 'CHECK', target, cached);
}
