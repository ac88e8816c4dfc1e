-- A user's energy, today's taps and boost levels now, without changing anything.
-- KEYS[1] user state hash, KEYS[2] user boost levels hash.
-- ARGV 1 energy max, 2 regen / s, 3 now ms ("" = TIME),
--      4 energy max per tank level, 5 regen / s per regen level
--      (as submit_clicks.lua applies them, so both agree).
-- Reply {energy milli-units, taps accepted today, now ms, tank level,
--        regen level, tap level}.
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local levels = redis.call('HMGET', KEYS[2], 'e', 'r', 't')
local tank = tonumber(levels[1]) or 0
local boost = tonumber(levels[2]) or 0
local tap = tonumber(levels[3]) or 0
local energy_max = (tonumber(ARGV[1]) + tank * tonumber(ARGV[4])) * 1000
local regen = tonumber(ARGV[2]) + boost * tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'em', 'ts', 'd', 'dt')
if not state[2] then
  return {energy_max, 0, now, tank, boost, tap}
end
local elapsed = math.max(0, now - tonumber(state[2]))
local em = math.min(energy_max, tonumber(state[1]) + regen * elapsed)
local today = 0
if tonumber(state[3]) == math.floor(now / 86400000) then
  today = tonumber(state[4])
end
return {math.floor(em), today, now, tank, boost, tap}
