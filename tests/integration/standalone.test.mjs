// The repository stands alone: no file in it names a path of one machine or reaches outside the
// repository, the documentation's relative links resolve inside it, and no runtime artefact (a
// Redis dump, say) lies in the source tree. Needs no binary: it reads the tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(self), '../..');

// Every file of the tree, relative to the root, but for what builds and installs make.
function files(dir = root, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    const rel = path.relative(root, full);
    if (e.name === '.git') continue;  // a folder, or in a worktree a file naming one
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || (dir === root && /^build/.test(e.name)) ||
        rel === path.join('bench', 'results')) continue;
      files(full, out);
    } else if (e.isFile()) {
      out.push(rel);
    }
  }
  return out;
}
const all = files();
const text = (rel) => {
  const b = fs.readFileSync(path.join(root, rel));
  return b.includes(0) ? null : b.toString('utf8');
};
const inside = (p) => { const r = path.relative(root, p); return r !== '' && !r.startsWith('..') && !path.isAbsolute(r); };

test('the walk sees the repository', () => {
  for (const f of ['CMakeLists.txt', 'README.md', path.join('tests', 'integration', 'harness.mjs')]) {
    assert.ok(all.includes(f), f);
  }
});

test('no file names a path of one machine, or a folder beside the repository', () => {
  // Assembled, so that this file does not match itself.
  const patterns = ['work', 'root', 'home'].map((d) => `/${d}/`).concat(['../' + 'shared/']);
  const found = [];
  for (const rel of all) {
    if (path.join(root, rel) === self) continue;
    const t = text(rel);
    if (t === null) continue;
    t.split('\n').forEach((line, i) => {
      for (const p of patterns) if (line.includes(p)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});

test('the documentation links and paths resolve inside the repository', () => {
  const bad = [];
  for (const rel of all.filter((f) => f.endsWith('.md'))) {
    const t = text(rel);
    const dir = path.dirname(path.join(root, rel));
    // [text](target): relative targets must exist, inside the repository.
    for (const m of t.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1].split('#')[0];
      if (!target || /^[a-z][a-z0-9+.-]*:/i.test(target)) continue;  // anchors, URLs
      const p = path.resolve(dir, target);
      if (!inside(p) || !fs.existsSync(p)) bad.push(`${rel}: link ${m[1]}`);
    }
    // A path that starts with ../ (in backticks or plain text) must not climb out of it.
    for (const m of t.matchAll(/(?:^|[\s`("'[])(\.\.\/[^\s`)"'\]]*)/g)) {
      if (!inside(path.resolve(dir, m[1]))) bad.push(`${rel}: path ${m[1]}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('no runtime artefact lies in the source tree', () => {
  const artefacts = all.filter((f) => /\.(rdb|aof)$|(^|\/)nodes-\d+\.conf$/.test(f));
  assert.deepEqual(artefacts, []);
  const ignored = fs.readFileSync(path.join(root, '.gitignore'), 'utf8').split('\n');
  assert.ok(ignored.includes('dump.rdb'), '.gitignore lists dump.rdb');
});
