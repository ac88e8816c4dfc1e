-- One round trip before a protected request: every rate-limit tier of its
-- policy (GCRA token buckets), then, if the request may pass, the claim of its
-- idempotency record. Atomic, so no read-then-write race; a request denied by
-- one tier charges none.
--
-- KEYS: the tier buckets (1..n), then the idempotency record when claiming.
-- ARGV: [1] n, [2] now in microseconds ('' = Redis server time),
--       [3] shadow '1'|'0' (denials are reported, not enforced),
--       [4] fingerprint ('' = no claim), [5] claim token, [6] lease ms,
--       then for each tier: emission interval (us), burst.
-- Reply: {passed, limiting tier (0 = none), retry after us, claim code,
--         claim data, then remaining and reset us for each tier}
-- Claim codes: 0 none, 1 claimed, 2 fingerprint differs, 3 in flight (data =
-- lease ms left), 4 finished (data = the stored answer).
local n = tonumber(ARGV[1])
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local limiting, retry = 0, 0
local new_tats, remaining, reset = {}, {}, {}
for i = 1, n do
  local interval = tonumber(ARGV[5 + 2 * i])
  local burst = tonumber(ARGV[6 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local slack = now + burst * interval - new_tat
  if slack < 0 then
    if -slack > retry then limiting, retry = i, -slack end
    remaining[i] = 0
    reset[i] = tat - now
  else
    remaining[i] = math.floor(slack / interval)
    reset[i] = new_tat - now
  end
  new_tats[i] = new_tat
end

if limiting == 0 then
  for i = 1, n do
    redis.call('SET', KEYS[i], new_tats[i], 'PX', math.ceil((new_tats[i] - now) / 1000) + 1)
  end
end

local passed = limiting == 0 or ARGV[3] == '1'
local claim, data = 0, ''
if passed and ARGV[4] ~= '' then
  local record_key, fp = KEYS[n + 1], ARGV[4]
  local record = redis.call('GET', record_key)
  if not record then
    redis.call('SET', record_key, 'P' .. ARGV[5] .. fp, 'PX', ARGV[6])
    claim = 1
  elseif string.sub(record, 1, 1) == 'P' then
    if string.sub(record, 2 + #ARGV[5], 1 + #ARGV[5] + #fp) ~= fp then
      claim = 2
    else
      claim, data = 3, redis.call('PTTL', record_key)
    end
  elseif string.sub(record, 2, 1 + #fp) ~= fp then
    claim = 2
  else
    claim, data = 4, string.sub(record, 2 + #fp)
  end
end

local reply = {passed and 1 or 0, limiting, retry, claim, data}
for i = 1, n do
  reply[#reply + 1] = remaining[i]
  reply[#reply + 1] = reset[i]
end
return reply
