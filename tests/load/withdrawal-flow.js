// The money path: a signed deposit webhook credits the user, the user asks
// for a withdrawal (held until an admin decides), then reads its status.
//
//   BASE_URL=https://staging.example.com TOKENS_FILE=tokens.txt WEBHOOK_SECRET=... \
//     VUS=20 DURATION=60s k6 run tests/load/withdrawal-flow.js
//
// WEBHOOK_SECRET is the staging gateway's DEPOSIT_WEBHOOK_SECRET, which must
// list USDT on ethereum in WALLET_DEPOSIT_WALLETS. A user may ask for 10
// withdrawals an hour: give many users (TOKENS_FILE), or raise the limit on
// staging. WITHDRAW_TO is the destination (default: an EIP-55 example
// address, not any user's own wallet). Thresholds: errors < 1 %, p95 < 1 s.
import http from 'k6/http';
import crypto from 'k6/crypto';
import { check, sleep } from 'k6';
import { Rate } from 'k6/metrics';
import { BASE_URL, jsonHeaders, newKey, number, tokens } from './common.js';

const TOKENS = tokens();
const SECRET = __ENV.WEBHOOK_SECRET;
if (!SECRET) {
  throw new Error('set WEBHOOK_SECRET to the gateway DEPOSIT_WEBHOOK_SECRET');
}
const DESTINATION = __ENV.WITHDRAW_TO || '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359';
const errors = new Rate('errors');

export const options = {
  scenarios: {
    withdrawals: {
      executor: 'constant-vus',
      vus: number('VUS', 20),
      duration: __ENV.DURATION || '60s',
    },
  },
  thresholds: {
    errors: ['rate<0.01'],
    http_req_duration: ['p(95)<1000'],
  },
};

function step(response, name, statuses) {
  const ok = statuses.includes(response.status);
  errors.add(!ok);
  check(response, { [`${name} ${statuses.join('/')}`]: () => ok });
  return ok;
}

function txHash() {
  let hex = '';
  for (let i = 0; i < 64; i += 1) {
    hex += Math.floor(Math.random() * 16).toString(16);
  }
  return `0x${hex}`;
}

export default function () {
  const token = TOKENS[(__VU - 1) % TOKENS.length];
  const reference = http.get(`${BASE_URL}/api/wallet/deposit-reference`, {
    headers: jsonHeaders(token),
    tags: { name: 'deposit_reference' },
  });
  if (!step(reference, 'deposit reference', [200])) {
    return;
  }
  const body = JSON.stringify({
    chain: 'ethereum',
    txHash: txHash(),
    logIndex: '0',
    depositReference: reference.json().depositReference,
    amount: { currency: 'USDT', amount: '25.5' },
  });
  const timestamp = Math.floor(Date.now() / 1000).toString();
  const signature = crypto.hmac('sha256', SECRET, `${timestamp}.${body}`, 'hex');
  const deposit = http.post(`${BASE_URL}/api/webhooks/deposits`, body, {
    headers: jsonHeaders(null, {
      'X-Webhook-Timestamp': timestamp,
      'X-Webhook-Signature': `sha256=${signature}`,
    }),
    tags: { name: 'deposit_webhook' },
  });
  if (!step(deposit, 'deposit webhook', [200, 201, 202])) {
    return;
  }
  const asked = http.post(
    `${BASE_URL}/api/wallet/withdrawals`,
    JSON.stringify({
      amount: { currency: 'USDT', amount: '12.5' },
      chain: 'ethereum',
      address: DESTINATION,
    }),
    {
      headers: jsonHeaders(token, { 'Idempotency-Key': newKey('k6-withdrawal') }),
      tags: { name: 'withdrawal' },
    },
  );
  if (!step(asked, 'withdrawal', [200, 201])) {
    return;
  }
  const { id, state } = asked.json().withdrawal;
  check(state, { 'withdrawal held (pending)': (value) => value === 'WITHDRAWAL_STATE_PENDING' });
  sleep(0.2);
  const status = http.get(`${BASE_URL}/api/wallet/withdrawals/${encodeURIComponent(id)}`, {
    headers: jsonHeaders(token),
    tags: { name: 'withdrawal_status' },
  });
  if (step(status, 'withdrawal status', [200])) {
    check(status, { 'same withdrawal': (r) => r.json().withdrawal.id === id });
  }
  sleep(1);
}
