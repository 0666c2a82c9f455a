// deploy/Dockerfile builds from the repository: every path it copies exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from '../../helpers/isthmus.ts';

test('every COPY source of deploy/Dockerfile exists in the repository', () => {
  const lines = fs.readFileSync(path.join(REPO, 'deploy', 'Dockerfile'), 'utf8').split('\n');
  const sources = lines
    .filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l))
    .flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
  assert.ok(sources.length >= 5, `COPY sources: ${sources.join(', ')}`);
  const missing = sources.filter((s) => !fs.existsSync(path.join(REPO, s)));
  assert.deepEqual(missing, [], `deploy/Dockerfile copies paths that do not exist: ${missing.join(', ')}`);
});
