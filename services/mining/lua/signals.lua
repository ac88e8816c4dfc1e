-- Fold one worker batch of accepted clicks into each user's rolling signal
-- state (services.mining.signals; the judging is in Python). One call per batch.
--
-- KEYS[1] the suspects sorted set; KEYS[1 + u] user u's state hash.
-- ARGV 1 min samples (an interval window is complete at this many)
--      2 session gap ms (a longer pause starts a new interval window)
--      3 per-click maximum taps   4 rate window ms
--      5 taps a rate window needs to be "at the cap"   6 state ttl s
-- then per user: its click count k, k pairs (accepted at ms, taps), its user id.
--
-- State: l last click ms; n, mu, m2 the open interval window (Welford, ms);
-- c clicks in a row at the per-click maximum; w the open rate window's index,
-- wt its taps; hf, ht the first and last index of the run of at-the-cap
-- windows (hf -1: none).
--
-- Clicks not after the last one seen (a worker retrying a batch) are skipped.
--
-- Reply per user: {suspect 0/1, completed window samples (0: none), its mean
-- ms, its M2 (strings), longest cap run seen, longest at-the-cap run in windows}.
-- Of several windows completed in one batch the steadiest (least stddev/mean)
-- is answered.
local min_samples = tonumber(ARGV[1])
local gap = tonumber(ARGV[2])
local per_click = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local hot_taps = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])

local reply = {}
local a = 7
for u = 2, #KEYS do
  local key = KEYS[u]
  local k = tonumber(ARGV[a])
  local s = redis.call('HMGET', key, 'l', 'n', 'mu', 'm2', 'c', 'w', 'wt', 'hf', 'ht')
  local last = tonumber(s[1])
  local n, mu, m2 = tonumber(s[2]) or 0, tonumber(s[3]) or 0, tonumber(s[4]) or 0
  local c = tonumber(s[5]) or 0
  local w, wt = tonumber(s[6]), tonumber(s[7]) or 0
  local hf, ht = tonumber(s[8]) or -1, tonumber(s[9]) or -1
  local done_n, done_mu, done_m2, best = 0, 0, 0, nil
  local max_c, max_hot = c, 0
  if hf >= 0 then max_hot = ht - hf + 1 end

  for i = 1, k do
    local t, taps = tonumber(ARGV[a + 2 * i - 1]), tonumber(ARGV[a + 2 * i])
    -- A click not after the last one seen is a worker's retry (or out of
    -- order): it was counted, or is too late to place; skip it.
    if last == nil or t > last then
      -- intervals
      if last ~= nil then
        local dt = t - last
        if dt > gap then
          n, mu, m2 = 0, 0, 0
        else
          n = n + 1
          local delta = dt - mu
          mu = mu + delta / n
          m2 = m2 + delta * (dt - mu)
          if n >= min_samples then
            local ratio = (mu > 0) and (m2 / (n - 1)) / (mu * mu) or math.huge
            if best == nil or ratio < best then
              best, done_n, done_mu, done_m2 = ratio, n, mu, m2
            end
            n, mu, m2 = 0, 0, 0
          end
        end
      end
      last = t
      -- clicks at the per-click maximum
      if taps >= per_click then
        c = c + 1
        if c > max_c then max_c = c end
      else
        c = 0
      end
      -- rate windows
      local idx = math.floor(t / window)
      if w == nil then
        w, wt = idx, taps
      elseif idx == w then
        wt = wt + taps
      else
        if wt >= hot_taps then
          if hf >= 0 and ht == w - 1 then ht = w else hf, ht = w, w end
          if ht - hf + 1 > max_hot then max_hot = ht - hf + 1 end
        else
          hf, ht = -1, -1
        end
        w, wt = idx, taps
      end
    end
  end

  redis.call('HSET', key, 'l', last, 'n', n, 'mu', tostring(mu), 'm2', tostring(m2), 'c', c,
    'w', w, 'wt', wt, 'hf', hf, 'ht', ht)
  redis.call('EXPIRE', key, ttl)
  local suspect = redis.call('ZSCORE', KEYS[1], ARGV[a + 2 * k + 1]) and 1 or 0
  local n_reply = #reply
  reply[n_reply + 1] = suspect
  reply[n_reply + 2] = done_n
  reply[n_reply + 3] = string.format('%.6f', done_mu)
  reply[n_reply + 4] = string.format('%.6f', done_m2)
  reply[n_reply + 5] = max_c
  reply[n_reply + 6] = max_hot
  a = a + 2 * k + 2
end
return reply
