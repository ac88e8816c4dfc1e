-- Accept one click (a batch of taps) atomically: dedupe on the key, refuse
-- when the stream is too deep, apply energy / tap rate / daily cap, queue it.
--
-- KEYS[1] stream            KEYS[2] user state hash    KEYS[3] click status hash
-- ARGV  1 taps asked        2 client span ms (-1: none) 3 fingerprint
--       4 max depth         5 energy max              6 energy regen / s
--       7 energy per tap    8 max taps / s            9 tap burst
--      10 daily cap (0: none)                        11 reward units per tap
--      12 status ttl s     13 throttled status ttl s  14 user id
--      15 key              16 request id             17 now ms ("" = Redis TIME)
--
-- Reply {code, accepted taps, retry after ms, queue depth, energy}; codes:
-- 1 queued, 2 deduplicated, 3 key reused with another batch, 4 queue full,
-- 5 energy exhausted, 6 daily cap reached, 7 tap rate exceeded.
--
-- State (milli-units so regeneration stays exact): em energy, tm tap tokens,
-- ts last update ms, d UTC day number, dt taps accepted that day.
local asked = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local now
if ARGV[17] ~= '' then
  now = tonumber(ARGV[17])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local status = redis.call('HMGET', KEYS[3], 's', 'fp', 'n')
if status[1] and status[1] ~= 't' then
  if status[2] ~= ARGV[3] then
    return {3, 0, 0, 0, 0}
  end
  return {2, tonumber(status[3]), 0, 0, 0}
end

local depth = redis.call('XLEN', KEYS[1])
if depth >= tonumber(ARGV[4]) then
  return {4, 0, 1000, depth, 0}
end

local energy_max = tonumber(ARGV[5]) * 1000
local regen = tonumber(ARGV[6])
local cost = tonumber(ARGV[7]) * 1000
local tps = tonumber(ARGV[8])
local burst = tonumber(ARGV[9]) * 1000
local cap = tonumber(ARGV[10])
local day = math.floor(now / 86400000)

local state = redis.call('HMGET', KEYS[2], 'em', 'tm', 'ts', 'd', 'dt')
local em, tm, day_taps = energy_max, burst, 0
if state[3] then
  local elapsed = math.max(0, now - tonumber(state[3]))
  em = math.min(energy_max, tonumber(state[1]) + regen * elapsed)
  tm = math.min(burst, tonumber(state[2]) + tps * elapsed)
  if tonumber(state[4]) == day then
    day_taps = tonumber(state[5])
  end
end

local accepted = math.min(asked, math.floor(tm / 1000))
if cost > 0 then
  accepted = math.min(accepted, math.floor(em / cost))
end
if span >= 0 then
  accepted = math.min(accepted, math.floor(span * tps / 1000) + 1)
end
if cap > 0 then
  accepted = math.min(accepted, cap - day_taps)
end

if accepted <= 0 then
  local code, retry
  if cap > 0 and day_taps >= cap then
    code, retry = 6, (day + 1) * 86400000 - now
  elseif cost > 0 and em < cost then
    code, retry = 5, math.ceil((cost - em) / regen)
  else
    code, retry = 7, math.ceil((1000 - tm) / tps)
  end
  retry = math.max(1, retry)
  local reasons = {[5] = 'energy_exhausted', [6] = 'daily_cap_reached', [7] = 'tap_rate_exceeded'}
  redis.call('HSET', KEYS[3], 's', 't', 'fp', ARGV[3], 'n', 0, 'e', reasons[code], 'ra', now + retry)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[13]))
  return {code, 0, retry, depth, math.floor(em / 1000)}
end

em = em - accepted * cost
tm = tm - accepted * 1000
redis.call('HSET', KEYS[2], 'em', em, 'tm', tm, 'ts', now, 'd', day, 'dt', day_taps + accepted)
redis.call('EXPIRE', KEYS[2], 172800)
redis.call('XADD', KEYS[1], '*', 'u', ARGV[14], 'k', ARGV[15], 'n', accepted,
  'r', accepted * tonumber(ARGV[11]), 't', now, 'q', ARGV[16])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 's', 'q', 'fp', ARGV[3], 'n', accepted, 't', now)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[12]))
return {1, accepted, 0, depth + 1, math.floor(em / 1000)}
