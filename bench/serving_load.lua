-- wrk script for bench_serving.py: single-row POSTs, a fresh random row per request (no cache hits).
-- Usage: wrk -s serving_load.lua URL -- <platform|universal|v2|v2-platform|template> <n_features> <vary:1|0> [api-key]
--        [model: the universal route's model name | template: any peer's body, "{row}" standing for the row]
-- The done() hook prints one line, "BENCH {json}", that bench_serving.py parses.
local mode, width, vary, key, model = "platform", 10, true, nil, nil
local fixed
local counter = 0
local before, after  -- template mode: the body around "{row}"

local function row()
  local values = {}
  for i = 1, width do
    values[i] = string.format("%.6f", math.random() * 4 - 2)
  end
  return "[" .. table.concat(values, ",") .. "]"
end

local function body()
  local r = row()
  if mode == "template" then
    -- bench/peers: each peer's own protocol, e.g. '{"instances":[{row}]}'; the row is a JSON array
    return before .. r .. after
  end
  if mode == "v2-platform" then
    -- the platform's V2 route: one tensor named after the signature, default outputs (labels + probabilities)
    return '{"inputs":[{"name":"input","shape":[1,' .. width .. '],"datatype":"FP64","data":' .. r .. '}]}'
  end
  if mode == "v2" then
    -- predict_proba only: one pass of the model, as the platform makes for labels + probabilities
    -- (asking for "predict" as well would run a forest twice); the labels are its argmax.
    return '{"inputs":[{"name":"input-0","shape":[1,' .. width .. '],"datatype":"FP64","data":' .. r ..
           '}],"outputs":[{"name":"predict_proba"}]}'
  end
  if mode == "universal" then
    -- POST /api/v1/predict: the model by name, its production alias resolved per request
    return '{"model":"' .. model .. '","inputs":[' .. r .. ']}'
  end
  return '{"inputs":[' .. r .. ']}'
end

local threads_seen = 0
function setup(thread)
  threads_seen = threads_seen + 1
  thread:set("thread_id", threads_seen)
end

function init(args)
  mode = args[1] or mode
  width = tonumber(args[2] or width)
  vary = (args[3] or "1") == "1"
  key = args[4]
  model = args[5]
  if mode == "template" then
    local at = string.find(model or "", "{row}", 1, true)  -- plain find: no Lua pattern characters
    if not at then
      error('template mode needs a body template containing "{row}"')
    end
    before, after = string.sub(model, 1, at - 1), string.sub(model, at + 5)
  end
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if key and key ~= "" then
    wrk.headers["X-API-Key"] = key
  end
  fixed = body()
end

function request()
  if vary then
    return wrk.format(nil, nil, nil, body())
  end
  return wrk.format(nil, nil, nil, fixed)
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
