// The shop's suite, against a running payletter-emulator: the shop speaks HTTP to it, and the test
// plays the payer and moves the emulator with its command line, as any language's suite could.
// PAYLETTER_EMULATOR_URL says where it runs (default http://127.0.0.1:8080); SHOP_CALLBACK_HOST is
// the name the emulator reaches this machine by, when it runs elsewhere (in a container).
'use strict';

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { once } = require('node:events');
const { after, before, describe, test } = require('node:test');
const { promisify } = require('node:util');

const { createShop } = require('../shop');

const CLI = process.env.PAYLETTER_EMULATOR_CLI ?? 'payletter-emulator';
const CALLBACK_HOST = process.env.SHOP_CALLBACK_HOST ?? '127.0.0.1';

// One command of the emulator's CLI: its JSON answer, or a failure carrying its JSON refusal.
async function emulator(...args) {
  try {
    const env = { ...process.env, PAYLETTER_EMULATOR_SANDBOX: sandbox?.id ?? '' };
    const { stdout } = await promisify(execFile)(CLI, args, { env });
    return JSON.parse(stdout);
  } catch (error) {
    try {
      error.refusal = JSON.parse(error.stderr); // the emulator's refusal; a usage error is plain text
    } catch {
      error.refusal = undefined;
    }
    throw error;
  }
}

let sandbox; // this run's own client, keys and state on the emulator
let shop;
let shopUrl;

async function call(method, path, body) {
  const answer = await fetch(shopUrl + path, {
    method, headers: { 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
  });
  return { status: answer.status, body: await answer.json() };
}

before(async () => {
  sandbox = await emulator('sandbox', 'create');
  shop = createShop({ gatewayUrl: sandbox.base_url, clientId: sandbox.client_id, paymentKey: sandbox.payment_key,
    publicHost: CALLBACK_HOST });
  shop.listen(0, CALLBACK_HOST === '127.0.0.1' ? '127.0.0.1' : '0.0.0.0');
  await once(shop, 'listening');
  shopUrl = `http://127.0.0.1:${shop.address().port}`;
});

after(async () => {
  shop.close();
  const id = sandbox.id;
  sandbox = undefined;
  await emulator('sandbox', 'delete', id);
});

describe('paying by card', () => {
  test('the payer approves, the callback settles the order and is acknowledged', async () => {
    const order = (await call('POST', '/orders', { amount: 15000, product_name: 'a teapot' })).body;
    assert.match(order.token, /^\d{18}$/);
    assert.equal(order.status, 'pending');

    const { fields } = await emulator('approve', order.token);
    assert.equal(fields.code, '0');
    assert.equal(fields.order_no, order.order_no);

    const flushed = await emulator('callbacks', 'flush');
    assert.equal(flushed.idle, true);
    const { callbacks } = await emulator('callbacks', 'list', '--tid', fields.tid);
    assert.equal(callbacks.length, 1);
    assert.equal(callbacks[0].status, 'delivered'); // the shop answered {"code": 0}
    assert.equal(callbacks[0].attempts[0].http_status, 200);

    const settled = (await call('GET', `/orders/${order.order_no}`)).body;
    assert.deepEqual([settled.status, settled.tid], ['paid', fields.tid]);
  });

  test('a paid order is cancelled at the gateway', async () => {
    const order = (await call('POST', '/orders', { amount: 3000 })).body;
    const { fields } = await emulator('approve', order.token);
    await emulator('callbacks', 'wait', '--tid', fields.tid);

    const cancelled = await call('POST', `/orders/${order.order_no}/cancel`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, 'cancelled');
    const payment = await emulator('payments', 'get', fields.tid);
    assert.deepEqual(payment.cancellations.map((c) => c.amount), [3000]);
  });

  test('a declined payment leaves the order pending, with no callback', async () => {
    const order = (await call('POST', '/orders', { amount: 2000 })).body;
    const { fields } = await emulator('decline', order.token, '--code', '6001', '--message', 'card refused');
    assert.equal(fields.code, '6001');

    await emulator('callbacks', 'flush');
    const { callbacks } = await emulator('callbacks', 'list');
    assert.deepEqual(callbacks.filter((c) => c.body.order_no === order.order_no), []);
    const { payments } = await emulator('payments', 'list', '--status', 'failed');
    assert.deepEqual(payments.map((p) => p.order_no), [order.order_no]);
    assert.equal((await call('GET', `/orders/${order.order_no}`)).body.status, 'pending');
    const refused = await call('POST', `/orders/${order.order_no}/cancel`);
    assert.equal(refused.status, 409);
  });

  test('a token that is no payment is refused with the emulator\'s message', async () => {
    await assert.rejects(emulator('approve', '100000000000000000'), (error) => {
      assert.equal(error.code, 1); // the exit status
      assert.equal(error.refusal.status, 404);
      assert.match(error.refusal.message, /100000000000000000/);
      return true;
    });
  });
});

describe('callbacks', () => {
  test('a forged callback is refused by the shop', async () => {
    const order = (await call('POST', '/orders', { amount: 1000 })).body;
    const forged = await call('POST', '/payment/callback', {
      order_no: order.order_no, user_id: 'guest', amount: 1000, tid: 'forged', payhash: 'ABC',
    });
    assert.equal(forged.status, 400);
    assert.equal((await call('GET', `/orders/${order.order_no}`)).body.status, 'pending');
  });
});
