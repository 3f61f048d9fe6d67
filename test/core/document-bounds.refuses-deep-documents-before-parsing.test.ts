/**
 * Unit tests of src/core/document-bounds.ts: the depth scan runs before any parser, is exact for
 * JSON, conservative for every YAML spelling of nesting (flow, indentation, compact sequences,
 * explicit keys, mixes), and the parsed value is checked again because aliases repeat nodes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { FerryError } from '../../src/core/errors.ts';
import { MAX_DOCUMENT_DEPTH, assertDocumentBounds, documentBoundsProblem, valueDepthProblem } from '../../src/core/document-bounds.ts';

const flow = (d: number) => `a: ${'['.repeat(d)}${']'.repeat(d)}`;
const flowMap = (d: number) => `a: ${'{a: '.repeat(d)}1${'}'.repeat(d)}`;
const compact = (d: number) => `a:\n${'- '.repeat(d)}x`;
const indented = (d: number) => `${Array.from({ length: d }, (_, i) => `${' '.repeat(i)}k:`).join('\n')} 1`;
const sequences = (d: number) => `${Array.from({ length: d }, (_, i) => `${' '.repeat(i)}-`).join('\n')} 1`;
const mixed = (d: number) => `${Array.from({ length: d }, (_, i) => `${' '.repeat(i * 2)}${i % 2 ? '- ' : 'k:'}`).join('\n')} 1`;
const json = (d: number) => `{"a":${'['.repeat(d)}${']'.repeat(d)}}`;
const jsonObjects = (d: number) => `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`;

/** Depth of a parsed value: a scalar is 0, `[]` is 1. */
function depth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, d + 1);
    for (const child of Object.values(v as object)) stack.push([child, d + 1]);
  }
  return max;
}

void describe('document bounds', () => {
  void test('the 200 KB bracket bomb of the issue is refused with a sentence, in YAML and JSON', () => {
    const bomb = `a: ${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    assert.ok(bomb.length > 200_000);
    const problem = documentBoundsProblem(bomb, 'yaml');
    assert.equal(problem?.kind, 'depth');
    assert.equal(problem?.message, `the document nests deeper than ${MAX_DOCUMENT_DEPTH} levels; flatten it`);
    assert.equal(documentBoundsProblem(`{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, 'json')?.kind, 'depth');
    assert.throws(
      () => assertDocumentBounds(bomb, 'yaml'),
      (err: unknown) => err instanceof FerryError && err.code === 'FERRY_DOCUMENT_TOO_DEEP' && err.status === 400,
    );
  });

  void test('unclosed brackets count too', () => {
    assert.equal(documentBoundsProblem(`a: ${'['.repeat(100_000)}`, 'yaml')?.kind, 'depth');
    assert.equal(documentBoundsProblem('['.repeat(100_000), 'json')?.kind, 'depth');
  });

  void test('every YAML form of nesting is bounded at 64, and a document at the bound is accepted', () => {
    for (const [name, form] of Object.entries({ flow, flowMap, compact, indented, sequences, mixed })) {
      for (const d of [MAX_DOCUMENT_DEPTH + 1, 200, 5_000]) {
        const text = form(d);
        // The parser itself overflows far below 5,000: check the real depth only where it survives.
        if (d <= 200) assert.ok(depth(parseYaml(text)) > MAX_DOCUMENT_DEPTH, `${name} ${d} is really deeper than the bound`);
        assert.equal(documentBoundsProblem(text, 'yaml')?.kind, 'depth', `${name} at ${d} is refused`);
      }
      const shallow = form(MAX_DOCUMENT_DEPTH - 2);
      assert.equal(documentBoundsProblem(shallow, 'yaml'), null, `${name} at ${MAX_DOCUMENT_DEPTH - 2} is accepted`);
    }
  });

  void test('JSON depth is exact: 64 accepted, 65 refused, brackets inside strings do not count', () => {
    assert.equal(documentBoundsProblem(jsonObjects(64), 'json'), null);
    assert.equal(documentBoundsProblem(jsonObjects(65), 'json')?.kind, 'depth');
    assert.equal(documentBoundsProblem(json(63), 'json'), null);
    assert.equal(documentBoundsProblem(json(64), 'json')?.kind, 'depth');
    assert.equal(documentBoundsProblem(JSON.stringify({ run: ['sh', '-c', `echo "${'['.repeat(1000)}" \\ ]]]`] }), 'json'), null);
  });

  void test('a quote cannot hide brackets from the YAML scan, nor closers in a string lower it', () => {
    // `x'` is a plain scalar (the quote is not an opening one): the brackets after it are structure.
    assert.equal(documentBoundsProblem(`a: x'\nb: ${'['.repeat(100)}${']'.repeat(100)}\nc: "'"`, 'yaml')?.kind, 'depth');
    // Closers inside a real string are text: the nesting around them still counts.
    const hidden = `a: ${'['.repeat(40)}"${']'.repeat(40)}", ${'['.repeat(40)}${']'.repeat(80)}`;
    assert.ok(depth(parseYaml(hidden)) > MAX_DOCUMENT_DEPTH);
    assert.equal(documentBoundsProblem(hidden, 'yaml')?.kind, 'depth');
    // Brackets in strings, comments and block scalars of a real request are not nesting.
    const request = [
      'tenant: shop # [[[[[[[[',
      'peak: { cpu: 500m, memory: 1Gi }',
      'steps:',
      `  - { name: a, run: ["sh", "-c", "echo '${'['.repeat(200)}'"] }`,
      '  - name: b',
      '    run:',
      '      - sh',
      '      - |',
      `        echo ${'['.repeat(200)}`,
    ].join('\n');
    assert.equal(documentBoundsProblem(request, 'yaml'), null);
  });

  void test('property: whatever the nesting, the scan refuses what parses deeper than the bound', () => {
    const forms = [flow, flowMap, compact, indented, sequences, mixed];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: forms.length - 1 }), fc.integer({ min: 1, max: 150 }), (f, d) => {
        const text = (forms[f] as (d: number) => string)(d);
        const problem = documentBoundsProblem(text, 'yaml');
        if (depth(parseYaml(text)) > MAX_DOCUMENT_DEPTH) assert.equal(problem?.kind, 'depth', text.slice(0, 80));
        if (d <= MAX_DOCUMENT_DEPTH - 2) assert.equal(problem, null);
      }),
      { numRuns: 300 },
    );
  });

  void test('property: nested arrays and objects of any shape, as JSON and as YAML', () => {
    const nested = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constant(1),
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(fc.constantFrom('a', 'b'), tie('node'), { maxKeys: 2 }),
      ),
    })).node;
    fc.assert(
      fc.property(nested, fc.integer({ min: 0, max: 80 }), (inner, wrap) => {
        let value: unknown = inner;
        for (let i = 0; i < wrap; i++) value = i % 2 ? [value] : { k: value };
        const text = JSON.stringify(value);
        const deep = depth(value) > MAX_DOCUMENT_DEPTH;
        assert.equal(documentBoundsProblem(text, 'json')?.kind === 'depth', deep);
        // JSON is YAML too (flow style); the YAML scan is conservative: never lets a deeper one through.
        if (deep) assert.equal(documentBoundsProblem(text, 'yaml')?.kind, 'depth');
      }),
      { numRuns: 300 },
    );
  });

  void test('a YAML mapping of more than 1000 keys is refused (the parser checks duplicates pairwise), block or flow', () => {
    const block = (n: number) => Array.from({ length: n }, (_, i) => `k${i}: ${i}`).join('\n');
    const flowKeys = (n: number) => `env: {${Array.from({ length: n }, (_, i) => `K${i}: v`).join(', ')}}`;
    assert.equal(documentBoundsProblem(block(1000), 'yaml'), null);
    assert.equal(documentBoundsProblem(block(1001), 'yaml')?.kind, 'keys');
    assert.equal(documentBoundsProblem(flowKeys(1000), 'yaml'), null);
    assert.equal(documentBoundsProblem(flowKeys(1001), 'yaml')?.kind, 'keys');
    // A long sequence costs nothing to parse: not bounded here (the body limit bounds it).
    assert.equal(documentBoundsProblem(`steps: [${'1, '.repeat(100_000)}1]`, 'yaml'), null);
  });

  void test('the size bound comes before the scan', () => {
    assert.equal(documentBoundsProblem('a: 1\n'.repeat(100), 'yaml', { maxLength: 100 })?.kind, 'size');
  });

  void test('aliases that repeat a deep node make the value deeper than the text: the value check refuses it', () => {
    const layers = ['a: &a [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]'];
    for (let i = 1; i < 4; i++)
      layers.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} ${'['.repeat(30)}*${String.fromCharCode(96 + i)}${']'.repeat(30)}`);
    const text = layers.join('\n');
    assert.equal(documentBoundsProblem(text, 'yaml'), null, 'the text nests 31 levels');
    const value = parseYaml(text, { maxAliasCount: 50 });
    assert.ok(depth(value) > MAX_DOCUMENT_DEPTH);
    assert.equal(valueDepthProblem(value)?.kind, 'depth');
    assert.equal(valueDepthProblem({ a: [1, { b: 'c' }] }), null);
  });

  void test('a cyclic value is refused, not walked forever', () => {
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    assert.equal(valueDepthProblem(cyclic)?.kind, 'depth');
  });
});
