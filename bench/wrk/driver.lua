-- The one wrk script every measurement uses. bench/wrk.ts writes the request to send as a Lua
-- table (BENCH_SPEC names the file) and reads back the one line done() prints.
--
-- A spec without `keys` is sent as a static request: wrk builds it once, and nothing runs in Lua
-- per request. With `keys`, every "@KEY@" in the path and body becomes prefix..n for a new n on
-- each request: counting up from `start` forever (a new cache key every request), or cycling
-- through `count` keys from `start` (a fixed set of warm keys).
local spec = dofile(os.getenv("BENCH_SPEC"))

wrk.method = spec.method
wrk.path = spec.path
wrk.body = spec.body
for name, value in pairs(spec.headers) do wrk.headers[name] = value end

-- How many requests this thread generated (per thread state; done() adds them up).
issued = 0

if spec.keys then
  local keys = spec.keys
  local path_head, path_tail = spec.path:match("^(.-)@KEY@(.*)$")
  local body_head, body_tail = (spec.body or ""):match("^(.-)@KEY@(.*)$")

  request = function()
    local n = keys.start + issued
    if keys.count > 0 then n = keys.start + issued % keys.count end
    issued = issued + 1
    local key = keys.prefix .. n
    local path = path_head and (path_head .. key .. path_tail) or spec.path
    local body = body_head and (body_head .. key .. body_tail) or spec.body
    return wrk.format(nil, path, nil, body)
  end
end

-- setup() and done() run in wrk's main Lua state; the threads' states are reached through these.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local generated = 0
  for _, thread in ipairs(threads) do generated = generated + (thread:get("issued") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d},"generated":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max, generated))
end
