import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidQuantityError, isQuantity, quantityMilliValue, quantityValue } from '../../src/api/quantity.js';

describe('quantity', () => {
  test('cpu quantities in millicores', () => {
    assert.equal(quantityMilliValue('100m'), 100);
    assert.equal(quantityMilliValue('0.5'), 500);
    assert.equal(quantityMilliValue('.5'), 500);
    assert.equal(quantityMilliValue('0.1'), 100, 'exact, not 100.00000000000001 rounded up');
    assert.equal(quantityMilliValue('2'), 2000);
    assert.equal(quantityMilliValue(1.5), 1500);
    assert.equal(quantityMilliValue('1500u'), 2, 'sub-milli rounds up like MilliValue()');
    assert.equal(quantityMilliValue('250000000n'), 250);
    assert.equal(quantityMilliValue('250000n'), 1, 'a quarter millicore rounds up');
  });

  test('memory quantities in bytes, binary and decimal suffixes', () => {
    assert.equal(quantityValue('128Mi'), 128 * 1024 * 1024);
    assert.equal(quantityValue('1Gi'), 1024 ** 3);
    assert.equal(quantityValue('1.5Gi'), 1.5 * 1024 ** 3);
    assert.equal(quantityValue('1G'), 1e9);
    assert.equal(quantityValue('500k'), 500_000);
    assert.equal(quantityValue('1e3'), 1000);
    assert.equal(quantityValue('12E-1'), 2, '1.2 rounds up to 2 like Value()');
    assert.equal(quantityValue('110'), 110);
    assert.equal(quantityValue('100m'), 1, 'fractional base units round up');
    assert.equal(quantityValue('0'), 0);
  });

  test('malformed quantities are InvalidQuantityError', () => {
    for (const text of ['', 'abc', '1Qi', '1.2.3', 'Mi', '1 Gi', '--1']) {
      assert.throws(() => quantityValue(text), InvalidQuantityError, text);
      assert.equal(isQuantity(text), false, text);
    }
    assert.equal(isQuantity('64Mi'), true);
  });
});
