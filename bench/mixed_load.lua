-- wrk script for bench_mixed.py: single-record POSTs to the typed demo pipeline churn-mixed, a fresh random
-- customer per request (strings, numbers, a missing income one time in ten), so no cache hits.
-- Usage: wrk -s mixed_load.lua URL -- [api-key]
local key
local countries = {"fr", "de", "es", "it"}
local plans = {"basic", "plus", "pro"}

local function body()
  local income = "null"
  if math.random() >= 0.1 then
    income = string.format("%.2f", 42000 + (math.random() - 0.5) * 40000)
  end
  return string.format('{"inputs":[{"country":"%s","plan":"%s","age":%d,"tenure_months":%d,"income":%s}]}',
    countries[math.random(#countries)], plans[math.random(#plans)], math.random(18, 79), math.random(1, 71), income)
end

local threads_seen = 0
function setup(thread)
  threads_seen = threads_seen + 1
  thread:set("thread_id", threads_seen)
end

function init(args)
  key = args[1]
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if key and key ~= "" then
    wrk.headers["X-API-Key"] = key
  end
end

function request()
  return wrk.format(nil, nil, nil, body())
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
    '"max_ms":%.3f,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
