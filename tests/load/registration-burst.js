// A registration burst: VUS users (default 1000) at once, each registering,
// asking for a one-time code and logging in with it.
//
//   BASE_URL=https://staging.example.com VUS=1000 k6 run tests/load/registration-burst.js
//
// The staging gateway must run with ENABLE_DEV_OTP_FALLBACK=true (no SMTP),
// so the code comes back as devCode, and with the registration and auth
// limits raised (all VUs share k6's IP): REGISTER_RATE_LIMIT_IP_RATE,
// REGISTER_RATE_LIMIT_WALLET_RATE, AUTH_RATE_LIMIT_IP_RATE. Without devCode
// the script stops after the code is requested (counted, not an error).
// Thresholds: errors < 1 %, each step's p95 < 2 s.
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { BASE_URL, jsonHeaders, number } from './common.js';

const VUS = number('VUS', 1000);
const errors = new Rate('errors');
const loggedIn = new Counter('logged_in');
const noDevCode = new Counter('otp_without_dev_code');

export const options = {
  scenarios: {
    burst: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: __ENV.MAX_DURATION || '5m',
    },
  },
  thresholds: {
    errors: ['rate<0.01'],
    'http_req_duration{name:register}': ['p(95)<2000'],
    'http_req_duration{name:otp_request}': ['p(95)<2000'],
    'http_req_duration{name:otp_verify}': ['p(95)<2000'],
  },
};

// An all-lowercase address: the gateway accepts it and checksums it (EIP-55).
function walletAddress() {
  let hex = '';
  for (let i = 0; i < 40; i += 1) {
    hex += Math.floor(Math.random() * 16).toString(16);
  }
  return `0x${hex}`;
}

function step(response, name, statuses) {
  const ok = statuses.includes(response.status);
  errors.add(!ok);
  check(response, { [`${name} ${statuses.join('/')}`]: () => ok });
  return ok;
}

export default function () {
  const email = `k6-${__VU}-${Date.now()}@example.com`;
  const register = http.post(
    `${BASE_URL}/api/auth/register`,
    JSON.stringify({ walletAddress: walletAddress(), email }),
    { headers: jsonHeaders(), tags: { name: 'register' } },
  );
  if (!step(register, 'register', [200, 201])) {
    return;
  }
  const asked = http.post(`${BASE_URL}/api/auth/otp/request`, JSON.stringify({ email }), {
    headers: jsonHeaders(),
    tags: { name: 'otp_request' },
  });
  if (!step(asked, 'otp request', [200, 201, 202])) {
    return;
  }
  const challenge = asked.json();
  if (!challenge.devCode) {
    noDevCode.add(1);
    return;
  }
  const verified = http.post(
    `${BASE_URL}/api/auth/otp/verify`,
    JSON.stringify({ challengeId: challenge.challengeId, code: challenge.devCode }),
    { headers: jsonHeaders(), tags: { name: 'otp_verify' } },
  );
  if (step(verified, 'otp verify', [200]) && verified.json().tokens.accessToken) {
    loggedIn.add(1);
  }
}
