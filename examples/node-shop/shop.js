// A tiny shop that takes payments through Payletter, in plain Node (node:http, no dependencies):
// it requests a payment, trusts a callback only when its payhash matches, answers it, and cancels.
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

const TEST_CLIENT = {
  clientId: 'pay_test',
  paymentKey: 'MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA=',
};

// The gateway's token is an 18-digit number, more than a JavaScript number holds exactly: read it
// as text before JSON.parse turns it into a rounded one.
function parseGatewayJson(text) {
  return JSON.parse(text.replace(/"token"\s*:\s*(\d+)/g, '"token":"$1"'));
}

// sha256(user_id + amount + tid + PAYMENT key), uppercase hex: what proves the gateway sent it.
function payhash(paymentKey, userId, amount, tid) {
  return crypto.createHash('sha256').update(`${userId}${amount}${tid}${paymentKey}`, 'utf8').digest('hex').toUpperCase();
}

function genuine(paymentKey, fields) {
  const expected = Buffer.from(payhash(paymentKey, fields.user_id ?? '', fields.amount ?? '', fields.tid ?? ''));
  const given = Buffer.from(String(fields.payhash ?? '').toUpperCase());
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

class GatewayRefused extends Error {
  constructor(status, body) {
    super(`HTTP ${status}, code ${body.code}: ${body.message}`);
    this.status = status;
    this.code = body.code;
  }
}

function createShop(options = {}) {
  const gatewayUrl = (options.gatewayUrl ?? process.env.PAYLETTER_API_URL ?? 'https://testpgapi.payletter.com').replace(/\/$/, '');
  const clientId = options.clientId ?? process.env.PAYLETTER_CLIENT_ID ?? TEST_CLIENT.clientId;
  const paymentKey = options.paymentKey ?? process.env.PAYLETTER_PAYMENT_KEY ?? TEST_CLIENT.paymentKey;
  const orders = new Map(); // order_no -> { order_no, amount, user_id, token, status, tid, pgcode }
  let serial = 0;
  // Where the gateway calls the shop back: given, or this host's address once listening.
  let publicUrl = options.publicUrl;

  async function gateway(path, body) {
    const answer = await fetch(gatewayUrl + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `PLKEY ${paymentKey}` },
      body: JSON.stringify({ client_id: clientId, ...body }),
    });
    const result = parseGatewayJson(await answer.text());
    if (answer.status !== 200) throw new GatewayRefused(answer.status, result);
    return result;
  }

  async function checkout(request) {
    const order = { order_no: `node-${process.pid}-${++serial}`, amount: request.amount, user_id: request.user_id ?? 'guest',
      pgcode: request.pgcode ?? 'creditcard', status: 'pending' };
    const payment = await gateway('/v1.0/payments/request', {
      pgcode: order.pgcode, user_id: order.user_id, order_no: order.order_no, amount: order.amount,
      product_name: request.product_name ?? 'a mug', service_name: 'node-shop',
      return_url: `${publicUrl}/payment/return`, callback_url: `${publicUrl}/payment/callback`,
      cancel_url: `${publicUrl}/payment/cancelled`,
    });
    order.token = payment.token;
    orders.set(order.order_no, order);
    return { ...order, online_url: payment.online_url };
  }

  // The gateway's notification: settle the order once, whatever the number of attempts.
  function callback(fields) {
    const order = orders.get(fields.order_no);
    if (!order || !genuine(paymentKey, fields) || Number(fields.amount) !== order.amount) {
      return [400, { code: 1, message: 'not a payment of this shop' }];
    }
    if (order.status === 'pending') Object.assign(order, { status: 'paid', tid: fields.tid, pgcode: fields.pgcode });
    return [200, { code: 0, message: 'success' }];
  }

  async function cancel(order) {
    if (order.status !== 'paid') return [409, { message: `order ${order.order_no} is ${order.status}` }];
    await gateway('/v1.0/payments/cancel', {
      pgcode: order.pgcode, user_id: order.user_id, tid: order.tid, amount: order.amount, ip_addr: '127.0.0.1',
    });
    order.status = 'cancelled';
    return [200, order];
  }

  async function route(method, path, body) {
    if (method === 'POST' && path === '/orders') return [201, await checkout(body)];
    if (method === 'POST' && path === '/payment/callback') return callback(body);
    const [, orderNo, action] = path.match(/^\/orders\/([^/]+)(\/cancel)?$/) ?? [];
    const order = orders.get(orderNo);
    if (!order) return [404, { message: 'no such order' }];
    if (method === 'GET' && !action) return [200, order];
    if (method === 'POST' && action) return cancel(order);
    return [405, { message: 'method not allowed' }];
  }

  const server = http.createServer(async (request, response) => {
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    let status, answer;
    try {
      const text = Buffer.concat(chunks).toString('utf8');
      [status, answer] = await route(request.method, new URL(request.url, 'http://shop').pathname,
        text ? JSON.parse(text) : {});
    } catch (error) {
      [status, answer] = error instanceof GatewayRefused ? [502, { message: error.message }] : [500, { message: String(error) }];
    }
    response.writeHead(status, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify(answer));
  });
  server.on('listening', () => {
    publicUrl ??= `http://${options.publicHost ?? '127.0.0.1'}:${server.address().port}`;
  });
  server.orders = orders;
  return server;
}

module.exports = { createShop, payhash, parseGatewayJson };

if (require.main === module) {
  const port = Number(process.env.PORT ?? 5000);
  createShop({ publicUrl: process.env.SHOP_PUBLIC_URL }).listen(port, '127.0.0.1', () => {
    console.log(`node-shop listening on http://127.0.0.1:${port}`);
  });
}
