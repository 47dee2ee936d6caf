import * as fs from 'node:fs';
import * as path from 'node:path';
import * as opcodes from '../../src/runtime/plan-opcodes';

const NATIVE = path.join(__dirname, '..', '..', 'native');
const rawHeader = fs.readFileSync(path.join(NATIVE, 'plan.h'), 'utf8');

/** The source without comments, so that a commented-out line never counts. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
}

/**
 * Evaluates a C integer constant expression of the kind plan.h uses:
 * decimal, hex, octal and binary literals with u/l suffixes, ( ), ~, <<, >>, |, &, +, -.
 */
function evalC(expr: string, bits: number): bigint {
  const tokens = expr.match(/0[xX][0-9a-fA-F]+[uUlL]*|0[bB][01]+[uUlL]*|\d+[uUlL]*|<<|>>|[|&+\-~()]|\S/g) ?? [];
  let pos = 0;
  const peek = (): string | undefined => tokens[pos];
  const take = (): string => {
    const t = tokens[pos++];
    if (t === undefined) throw new Error(`unexpected end of ${JSON.stringify(expr)}`);
    return t;
  };
  const primary = (): bigint => {
    const t = take();
    if (t === '(') {
      const v = or();
      if (take() !== ')') throw new Error(`missing ) in ${JSON.stringify(expr)}`);
      return v;
    }
    if (t === '~') return ~primary();
    if (t === '-') return -primary();
    const literal = t.replace(/[uUlL]+$/, '');
    if (/^0[xX][0-9a-fA-F]+$/.test(literal) || /^0[bB][01]+$/.test(literal)) return BigInt(literal);
    if (/^0[0-7]+$/.test(literal)) return BigInt(`0o${literal.slice(1)}`);
    if (/^\d+$/.test(literal)) return BigInt(literal);
    throw new Error(`cannot evaluate ${JSON.stringify(t)} in ${JSON.stringify(expr)}`);
  };
  const additive = (): bigint => {
    let v = primary();
    while (peek() === '+' || peek() === '-') v = take() === '+' ? v + primary() : v - primary();
    return v;
  };
  const shift = (): bigint => {
    let v = additive();
    while (peek() === '<<' || peek() === '>>') v = take() === '<<' ? v << additive() : v >> additive();
    return v;
  };
  const and = (): bigint => {
    let v = shift();
    while (peek() === '&') {
      take();
      v &= shift();
    }
    return v;
  };
  const or = (): bigint => {
    let v = and();
    while (peek() === '|') {
      take();
      v |= and();
    }
    return v;
  };
  const value = or();
  if (pos !== tokens.length) throw new Error(`trailing ${JSON.stringify(tokens.slice(pos).join(' '))} in ${JSON.stringify(expr)}`);
  return BigInt.asUintN(bits, value);
}

const TYPE_BITS: Record<string, number> = { uint8_t: 8, uint16_t: 16, uint32_t: 32, uint64_t: 64, int32_t: 32, int: 32, unsigned: 32 };

/** `constexpr <type> kName = <expr>;` at namespace scope. */
function parseConstants(source: string): Map<string, number> {
  const constants = new Map<string, number>();
  const re = /\bconstexpr\s+(?:const\s+)?(?:std::)?(\w+)\s+(k\w+)\s*=\s*([^;]+);/g;
  for (const [, type, name, expr] of source.matchAll(re)) {
    const bits = TYPE_BITS[type];
    if (bits === undefined) throw new Error(`plan.h: ${name} has a type this test does not know: ${type}`);
    if (constants.has(name)) throw new Error(`plan.h: ${name} is defined twice`);
    constants.set(name, Number(evalC(expr, bits)));
  }
  return constants;
}

/** `enum class <name> : <type> { A = 1, B, ... };` with implicit values counted as C++ does. */
function parseEnum(source: string, enumName: string): Map<string, number> {
  const match = new RegExp(`\\benum\\s+(?:class|struct)?\\s*${enumName}\\s*(?::\\s*(\\w+)\\s*)?\\{([^}]*)\\}`).exec(source);
  if (!match) throw new Error(`plan.h: no enum ${enumName}`);
  const bits = TYPE_BITS[match[1] ?? 'int'] ?? 32;
  const members = new Map<string, number>();
  let next = 0n;
  for (const entry of match[2].split(',').map((e) => e.trim()).filter(Boolean)) {
    const m = /^(\w+)\s*(?:=\s*([\s\S]+))?$/.exec(entry);
    if (!m) throw new Error(`plan.h: cannot parse enumerator ${JSON.stringify(entry)}`);
    const value = m[2] !== undefined ? evalC(m[2], bits) : next;
    if (members.has(m[1])) throw new Error(`plan.h: enumerator ${m[1]} is listed twice`);
    members.set(m[1], Number(value));
    next = value + 1n;
  }
  return members;
}

/** kPlanMagic -> PLAN_MAGIC */
function tsConstantName(cppName: string): string {
  return cppName
    .slice(1)
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase();
}

const header = stripComments(rawHeader);
const constants = parseConstants(header);
const ops = parseEnum(header, 'Op');
const flagConstants = new Map([...constants].filter(([name]) => name.startsWith('kFlag')).map(([name, v]) => [name.slice('kFlag'.length), v]));
const plainConstants = new Map([...constants].filter(([name]) => !name.startsWith('kFlag')).map(([name, v]) => [tsConstantName(name), v]));

describe('the parser of plan.h', () => {
  test('evaluates the expressions C++ would', () => {
    expect(evalC('0xffffffffu', 32)).toBe(0xffffffffn);
    expect(evalC('1u << 2', 32)).toBe(4n);
    expect(evalC('(1u << 0) | (1u << 3)', 32)).toBe(9n);
    expect(evalC('010', 32)).toBe(8n);
    expect(evalC('~0u', 32)).toBe(0xffffffffn);
    expect(() => evalC('sizeof(int)', 32)).toThrow(/cannot evaluate/);
  });

  test('reads constants and enumerators through comments and odd spacing', () => {
    const text = stripComments(`
      constexpr   uint32_t kA=7;  // constexpr uint32_t kB = 1;
      /* constexpr uint32_t kC = 2; */
      constexpr uint32_t
        kD = 1u <<
        4;
      enum class Op : uint32_t {
        X = 3,  // three
        Y,      /* implicit four */
        Z = 0x10
      };`);
    expect([...parseConstants(text)]).toEqual([
      ['kA', 7],
      ['kD', 16],
    ]);
    expect([...parseEnum(text, 'Op')]).toEqual([
      ['X', 3],
      ['Y', 4],
      ['Z', 16],
    ]);
    expect(tsConstantName('kPlanMagic')).toBe('PLAN_MAGIC');
    expect(tsConstantName('kNoString')).toBe('NO_STRING');
  });

  test('finds what plan.h defines (the parse did not silently come back empty)', () => {
    expect(ops.size).toBeGreaterThanOrEqual(20);
    expect(plainConstants.size).toBeGreaterThanOrEqual(6);
    expect(flagConstants.size).toBeGreaterThanOrEqual(3);
  });
});

describe('src/runtime/plan-opcodes.ts mirrors native/plan.h', () => {
  test('every opcode of the header is in Op, with the same number', () => {
    expect(Object.fromEntries(ops)).toEqual({ ...opcodes.Op });
  });

  test('every opcode of Op is in the header', () => {
    for (const [name, value] of Object.entries(opcodes.Op)) expect([name, ops.get(name)]).toEqual([name, value]);
  });

  test('every step flag of the header is in StepFlag, and the other way round', () => {
    expect(Object.fromEntries(flagConstants)).toEqual({ ...opcodes.StepFlag });
  });

  test('every other constant of the header is exported with the same value', () => {
    for (const [name, value] of plainConstants) {
      expect([name, (opcodes as Record<string, unknown>)[name]]).toEqual([name, value]);
    }
  });

  test('every export of plan-opcodes.ts comes from the header', () => {
    for (const [name, value] of Object.entries(opcodes)) {
      if (name === 'Op' || name === 'StepFlag') continue;
      expect([name, typeof value]).toEqual([name, 'number']);
      expect([name, plainConstants.get(name)]).toEqual([name, value]);
    }
  });

  test('opcodes and flags are distinct: no two names share a number', () => {
    expect(new Set(ops.values()).size).toBe(ops.size);
    expect(new Set(flagConstants.values()).size).toBe(flagConstants.size);
    for (const flag of flagConstants.values()) expect(flag & (flag - 1)).toBe(0);
  });
});

describe('native/plan.h agrees with the native code that reads it', () => {
  test('the wire format comment adds up to kHeaderSize and kStepSize', () => {
    const size = (fields: string): number =>
      [...fields.matchAll(/\b([ui])(8|16|32|64)\s+\w+(?:\[(\d+)\])?/g)].reduce((sum, [, , bits, n]) => sum + (Number(bits) / 8) * Number(n ?? 1), 0);
    const headerLine = /header:\s*([^\n]*)/.exec(rawHeader);
    const stepLines = /steps:[^\n]*\n\/\/\s*([^\n]*)/.exec(rawHeader);
    expect(headerLine).not.toBeNull();
    expect(stepLines).not.toBeNull();
    expect(size((headerLine as RegExpExecArray)[1])).toBe(constants.get('kHeaderSize'));
    expect(size((stepLines as RegExpExecArray)[1])).toBe(constants.get('kStepSize'));
  });

  test('the magic spells "TPLN" in little-endian bytes, as the header says', () => {
    const buf = Buffer.alloc(4);
    buf.writeUInt32LE(opcodes.PLAN_MAGIC);
    expect(buf.toString('latin1')).toBe('TPLN');
    expect(rawHeader).toMatch(/kPlanMagic\s*=\s*0x[0-9a-fA-F]+;\s*\/\/\s*"TPLN"/);
  });

  test('opcodes are contiguous, so the range check of plan_prepare.cc accepts each of them', () => {
    const values = [...ops.values()].sort((a, b) => a - b);
    values.forEach((v, i) => expect(v).toBe(values[0] + i));
    const prepare = stripComments(fs.readFileSync(path.join(NATIVE, 'plan_prepare.cc'), 'utf8'));
    const range = /op\s*>=\s*static_cast<uint32_t>\(\s*Op::(\w+)\s*\)\s*&&\s*op\s*<=\s*static_cast<uint32_t>\(\s*Op::(\w+)\s*\)/.exec(prepare);
    expect(range).not.toBeNull();
    const [, low, high] = range as RegExpExecArray;
    expect(ops.get(low)).toBe(values[0]);
    expect(ops.get(high)).toBe(values[values.length - 1]);
  });

  test('the child interpreter (plan_exec.cc) has a case for every opcode', () => {
    const exec = stripComments(fs.readFileSync(path.join(NATIVE, 'plan_exec.cc'), 'utf8'));
    const cases = new Set([...exec.matchAll(/\bcase\s+Op::(\w+)\s*:/g)].map((m) => m[1]));
    expect([...cases].sort()).toEqual([...ops.keys()].sort());
  });
});
