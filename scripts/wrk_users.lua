-- wrk script for scripts/bench_api.py: random known users, a share of unknown ones (fallback).
-- Usage: wrk ... -s scripts/wrk_users.lua URL -- USERS UNKNOWN_SHARE K
-- done() prints one line "WRK_JSON {...}" with percentiles in milliseconds.

local users, unknown, k = 100000, 0.03, 10

function init(args)
  users = tonumber(args[1] or users)
  unknown = tonumber(args[2] or unknown)
  k = tonumber(args[3] or k)
  local addr = tostring({}):match("0x(%x+)")  -- differs per thread: no two threads alike
  math.randomseed(os.time() + (addr and tonumber(addr:sub(-6), 16) or 0))
end

function request()
  local id
  if math.random() < unknown then
    id = users + math.random(1, 1000000)  -- never published: the fallback list
  else
    id = math.random(0, users - 1)
  end
  return wrk.format("GET", "/v1/users/" .. id .. "/recommendations?k=" .. k)
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_s":%.3f,"requests_per_s":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, errors, e.status))
end
