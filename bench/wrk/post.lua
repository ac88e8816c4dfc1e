-- wrk script for the benchmarks (bench/harness/load.py): POSTs from many users.
--
-- wrk -s bench/wrk/post.lua URL -- TOKENS_FILE RUN_ID PATH [BODY] [START]
--
-- Each request carries the next access token of TOKENS_FILE (one per line,
-- rotating; START shifts where this wrk instance begins, and each thread
-- starts elsewhere, so instances and threads do not send the same user in
-- step) and a unique Idempotency-Key (RUN_ID-thread-counter), so every
-- request is new: a protected one pays the full claim + store, a click is a
-- new click. response() counts 200/202/429/503/other per thread; done()
-- prints one JSON line: totals, errors, status counts and the latency at
-- every 0.1 % (so that several instances' distributions can be merged).

local tokens = {}
local counter = 0
local thread_id = 0
local run_id, path, body
local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if #line > 0 then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  file:close()
  run_id = args[2]
  path = args[3]
  body = args[4] or '{"amount":1}'
  local start = tonumber(args[5] or "0")
  thread_id = thread_number or 0
  counter = start + thread_id * 7919
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, {
    ["Authorization"] = tokens[(counter % #tokens) + 1],
    ["Idempotency-Key"] = run_id .. "-" .. thread_id .. "-" .. counter,
    ["Content-Type"] = "application/json",
  }, body)
end

-- wrk cannot copy tables between threads: each thread keeps its counts in
-- plain globals, which done() reads back with thread:get.
s200, s202, s429, s503, s_other = 0, 0, 0, 0, 0

function response(status, headers, response_body)
  if status == 202 then
    s202 = s202 + 1
  elseif status == 429 then
    s429 = s429 + 1
  elseif status == 503 then
    s503 = s503 + 1
  elseif status == 200 then
    s200 = s200 + 1
  else
    s_other = s_other + 1
  end
end

local function status_counts()
  local names = {"s200", "s202", "s429", "s503", "s_other"}
  local parts = {}
  for _, name in ipairs(names) do
    local count = 0
    for _, thread in ipairs(threads) do
      count = count + (tonumber(thread:get(name)) or 0)
    end
    parts[#parts + 1] = string.format('"%s":%d', name, count)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local errors = summary.errors
  local quantiles = {}
  for i = 1, 1000 do
    quantiles[#quantiles + 1] = tostring(latency:percentile(i / 10))
  end
  io.write(string.format(
    '\nWRK_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,'
      .. '"read_errors":%d,"write_errors":%d,"timeouts":%d,"statuses":%s,"quantiles_us":[%s]}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, status_counts(), table.concat(quantiles, ",")))
end
