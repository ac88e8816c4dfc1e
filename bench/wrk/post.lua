-- wrk script for bench/gateway_overhead.py: the same POST for every variant.
--
-- wrk -s bench/wrk/post.lua URL -- TOKENS_FILE RUN_ID PATH [BODY]
--
-- Each request carries the next access token of TOKENS_FILE (one per line,
-- rotating, each thread starting elsewhere) and a unique Idempotency-Key
-- (RUN_ID-thread-counter), so every protected request is a miss that pays
-- the full claim + store. done() prints one JSON line with the results.

local tokens = {}
local counter = 0
local thread_id = 0
local run_id, path, body
local next_thread = 0

function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
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
  thread_id = thread_number or 0
  counter = thread_id * 7919
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, {
    ["Authorization"] = tokens[(counter % #tokens) + 1],
    ["Idempotency-Key"] = run_id .. "-" .. thread_id .. "-" .. counter,
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"status_errors":%d,"connect_errors":%d,'
      .. '"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout))
end
