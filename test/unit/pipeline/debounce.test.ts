import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestScheduler } from 'rxjs/testing';
import { debounceWithMax } from '../../../src/pipeline/debounce.ts';

const scheduler = () => new TestScheduler((actual, expected) => assert.deepEqual(actual, expected));

test('emits the latest value after the quiet period', () => {
  scheduler().run(({ cold, expectObservable }) => {
    const src = cold('a 5ms b 5ms c');
    // c arrives at 12ms; after 10 quiet ms it is the one value emitted.
    expectObservable(src.pipe(debounceWithMax(10, 1000))).toBe('22ms c', { c: 'c' });
  });
});

test('steady churn still emits once the max wait is reached', () => {
  scheduler().run(({ cold, expectObservable }) => {
    // A value every 5ms never leaves a 10ms quiet gap; the 30ms cap forces emissions.
    const src = cold('a 4ms b 4ms c 4ms d 4ms e 4ms f 4ms g 4ms h 4ms i 4ms j 4ms k');
    expectObservable(src.pipe(debounceWithMax(10, 30)), '^ 80ms !').toBe('30ms g 29ms m', { g: 'g', m: 'k' });
  });
});

test('a single value is emitted after quiet period, not the max wait', () => {
  scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a').pipe(debounceWithMax(100, 10_000))).toBe('100ms a', { a: 'a' });
  });
});
