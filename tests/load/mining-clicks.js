// Launch-day clicks: clicks at a target rate over many users, with status polling.
//
//   BASE_URL=https://staging.example.com AUTH_TOKEN="<jwt>" RPS=10000 USERS=1000 \
//     DURATION=60s k6 run tests/load/mining-clicks.js
//
// BASE_URL  the gateway (default http://127.0.0.1:8080)
// AUTH_TOKEN one access token, or TOKENS_FILE one per line (one per user: a
//           user is limited to 5 clicks/s, burst 10, so spread the load)
// RPS       clicks per second to start (default 100), USERS virtual users
//           (default 200; raise it when k6 says it ran out of VUs)
// DURATION  how long (default 60s); STATUS_POLL_RATIO share of clicks whose
//           status is then polled (default 0.1)
//
// A 202 (queued), 200 (a replay) and 429 (a user's own limit) are answers as
// designed; anything else counts as an error. Thresholds: errors < 1 %,
// click p99 < 500 ms.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { BASE_URL, jsonHeaders, newKey, number, tokens } from './common.js';

const TOKENS = tokens();
const RPS = number('RPS', 100);
const USERS = number('USERS', 200);
const POLL = Math.min(1, number('STATUS_POLL_RATIO', 0.1));

const errors = new Rate('errors');
const accepted = new Counter('clicks_accepted');
const throttled = new Counter('clicks_throttled');

http.setResponseCallback(http.expectedStatuses(200, 202, 404, 429));

export const options = {
  scenarios: {
    clicks: {
      executor: 'constant-arrival-rate',
      rate: RPS,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: USERS,
      maxVUs: USERS * 2,
    },
  },
  thresholds: {
    errors: ['rate<0.01'],
    'http_req_duration{name:click}': ['p(99)<500'],
  },
};

export default function () {
  const token = TOKENS[(__VU - 1) % TOKENS.length];
  const key = newKey('k6-click');
  const click = http.post(`${BASE_URL}/api/mining/click`, JSON.stringify({ count: 1 }), {
    headers: jsonHeaders(token, { 'Idempotency-Key': key }),
    tags: { name: 'click' },
  });
  const expected = [200, 202, 429].includes(click.status);
  errors.add(!expected);
  check(click, { 'click answered 202/200/429': () => expected });
  if (click.status === 429) {
    throttled.add(1);
    return;
  }
  if (click.status !== 202 && click.status !== 200) {
    return;
  }
  accepted.add(1);
  if (Math.random() < POLL) {
    sleep(0.5);
    const status = http.get(`${BASE_URL}/api/mining/click/status?key=${encodeURIComponent(key)}`, {
      headers: jsonHeaders(token),
      tags: { name: 'click_status' },
    });
    const known = [200, 202, 429].includes(status.status);
    errors.add(!known);
    check(status, { 'status known (200 done / 202 queued / 429 throttled)': () => known });
  }
}
