-- Accept a batch of clicks (each a batch of taps) atomically, one by one in
-- order: dedupe on the key, refuse when the stream is too deep, apply energy /
-- tap rate / daily cap, queue it. A user may appear more than once: each click
-- sees the state the one before it left.
--
-- KEYS[1] stream; for click i (1-based), from FIRST_KEY: its user's state
-- hash, its status hash, its user's boost levels hash (PER_CLICK_KEYS each).
-- ARGV  1 max depth         2 energy max              3 energy regen / s
--       4 energy per tap    5 max taps / s            6 tap burst
--       7 daily cap (0: none)                         8 reward units per tap
--       9 status ttl s     10 throttled status ttl s 11 now ms ("" = Redis TIME)
--      12 energy max per tank level                  13 regen / s per regen level
--      14 reward units per tap per tap level
-- then 7 per click, from FIRST_ARG: taps asked, client span ms (-1: none),
--       fingerprint, user id, key, request id, trace parent ("" = none).
--
-- Boost levels (services.mining.clicks.BOOST_FIELDS, written by the purchase
-- flow from MongoDB): e tank, r regen, t tap; a missing hash is level 0. They
-- are read only for a click that gets to the energy check, and not at all
-- when the catalogue has no boosts (12-14 all 0).
--
-- Reply: 5 integers per click {code, accepted taps, retry after ms, queue
-- depth, energy}; codes: 1 queued, 2 deduplicated, 3 key reused with another
-- batch, 4 queue full, 5 energy exhausted, 6 daily cap reached, 7 tap rate
-- exceeded.
--
-- State (milli-units so regeneration stays exact): em energy, tm tap tokens,
-- ts last update ms, d UTC day number, dt taps accepted that day.
local now
if ARGV[11] ~= '' then
  now = tonumber(ARGV[11])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local max_depth = tonumber(ARGV[1])
local energy_max = tonumber(ARGV[2]) * 1000
local regen = tonumber(ARGV[3])
local cost = tonumber(ARGV[4]) * 1000
local tps = tonumber(ARGV[5])
local burst = tonumber(ARGV[6]) * 1000
local cap = tonumber(ARGV[7])
local units_per_tap = tonumber(ARGV[8])
local status_ttl = tonumber(ARGV[9])
local throttled_ttl = tonumber(ARGV[10])
local tank_step = tonumber(ARGV[12]) * 1000
local regen_step = tonumber(ARGV[13])
local tap_step = tonumber(ARGV[14])
local boosted = tank_step > 0 or regen_step > 0 or tap_step > 0
local FIRST_KEY, PER_CLICK_KEYS, FIRST_ARG, PER_CLICK_ARGS = 2, 3, 15, 7
-- Shadow mode (services.mining.suspects): a key after the clicks' keys is the
-- suspects sorted set; a flagged user's accepted clicks are queued with reward 0.
local shadow_key = KEYS[FIRST_KEY + (#ARGV - FIRST_ARG + 1) / PER_CLICK_ARGS * PER_CLICK_KEYS]
local day = math.floor(now / 86400000)
local reasons = {[5] = 'energy_exhausted', [6] = 'daily_cap_reached', [7] = 'tap_rate_exceeded'}

local depth = redis.call('XLEN', KEYS[1])
local reply = {}

local function answer(code, accepted, retry, at, energy)
  local n = #reply
  reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4], reply[n + 5] =
    code, accepted, retry, at, energy
end

for i = 1, (#ARGV - FIRST_ARG + 1) / PER_CLICK_ARGS do
  local k = FIRST_KEY + (i - 1) * PER_CLICK_KEYS
  local state_key, status_key, boosts_key = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local a = FIRST_ARG + (i - 1) * PER_CLICK_ARGS
  local asked, span, fp = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2]

  local status = redis.call('HMGET', status_key, 's', 'fp', 'n')
  if status[1] and status[1] ~= 't' then
    if status[2] ~= fp then
      answer(3, 0, 0, 0, 0)
    else
      answer(2, tonumber(status[3]), 0, 0, 0)
    end
  elseif depth >= max_depth then
    answer(4, 0, 1000, depth, 0)
  else
    local emax, rate, units = energy_max, regen, units_per_tap
    if boosted then
      local levels = redis.call('HMGET', boosts_key, 'e', 'r', 't')
      emax = emax + (tonumber(levels[1]) or 0) * tank_step
      rate = rate + (tonumber(levels[2]) or 0) * regen_step
      units = units + (tonumber(levels[3]) or 0) * tap_step
    end
    local state = redis.call('HMGET', state_key, 'em', 'tm', 'ts', 'd', 'dt')
    local em, tm, day_taps = emax, burst, 0
    if state[3] then
      local elapsed = math.max(0, now - tonumber(state[3]))
      em = math.min(emax, tonumber(state[1]) + rate * elapsed)
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
        code, retry = 5, math.ceil((cost - em) / rate)
      else
        code, retry = 7, math.ceil((1000 - tm) / tps)
      end
      retry = math.max(1, retry)
      redis.call('HSET', status_key, 's', 't', 'fp', fp, 'n', 0, 'e', reasons[code], 'ra', now + retry)
      redis.call('EXPIRE', status_key, throttled_ttl)
      answer(code, 0, retry, depth, math.floor(em / 1000))
    else
      if shadow_key and redis.call('ZSCORE', shadow_key, ARGV[a + 3]) then units = 0 end
      em = em - accepted * cost
      tm = tm - accepted * 1000
      redis.call('HSET', state_key, 'em', em, 'tm', tm, 'ts', now, 'd', day, 'dt', day_taps + accepted)
      redis.call('EXPIRE', state_key, 172800)
      if ARGV[a + 6] ~= '' then
        redis.call('XADD', KEYS[1], '*', 'u', ARGV[a + 3], 'k', ARGV[a + 4], 'n', accepted,
          'r', accepted * units, 't', now, 'q', ARGV[a + 5], 'tp', ARGV[a + 6])
      else
        redis.call('XADD', KEYS[1], '*', 'u', ARGV[a + 3], 'k', ARGV[a + 4], 'n', accepted,
          'r', accepted * units, 't', now, 'q', ARGV[a + 5])
      end
      redis.call('DEL', status_key)
      redis.call('HSET', status_key, 's', 'q', 'fp', fp, 'n', accepted, 't', now)
      redis.call('EXPIRE', status_key, status_ttl)
      depth = depth + 1
      answer(1, accepted, 0, depth, math.floor(em / 1000))
    end
  end
end
return reply
