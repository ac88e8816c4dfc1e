-- A user's energy and today's taps now, without changing anything.
-- KEYS[1] user state hash; ARGV 1 energy max, 2 regen / s, 3 now ms ("" = TIME)
-- Reply {energy milli-units, taps accepted today, now ms}.
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local energy_max = tonumber(ARGV[1]) * 1000
local state = redis.call('HMGET', KEYS[1], 'em', 'ts', 'd', 'dt')
if not state[2] then
  return {energy_max, 0, now}
end
local elapsed = math.max(0, now - tonumber(state[2]))
local em = math.min(energy_max, tonumber(state[1]) + tonumber(ARGV[2]) * elapsed)
local today = 0
if tonumber(state[3]) == math.floor(now / 86400000) then
  today = tonumber(state[4])
end
return {math.floor(em), today, now}
