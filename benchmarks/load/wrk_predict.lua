-- wrk script: POST each line of a file as a /predict body, in turn, and count statuses.
--   wrk -t1 -c8 -d15s -s wrk_predict.lua http://127.0.0.1:PORT -- BODIES_FILE
-- Requests are built once in init() (wrk's advice for fast servers); done() prints one JSON
-- line: requests, duration, per-status counts, socket errors and latency percentiles (us).

local requests = {}
local next_request = 1
statuses = {}

function init(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("POST", "/predict",
      {["Content-Type"] = "application/json"}, line)
  end
  next_request = 1 + ((id or 0) * 97) % #requests
end

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  threads = threads or {}
  table.insert(threads, thread)
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, _)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"statuses":{%s},"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d},"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, table.concat(parts, ","), e.connect, e.read,
    e.write, e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
