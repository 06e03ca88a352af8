-- POST /api/scores/update from many users, each request from a random user with that user's
-- own valid token, its own client address in X-Forwarded-For (the service trusts 127.0.0.1 as
-- its proxy), and a random delta in 1..1000 (the default accepted range).
-- usage: wrk -s bench/wrk/update.lua http://127.0.0.1:PORT -- TOKENS_LUA_FILE
-- TOKENS_LUA_FILE (written by bench/run.py) is `return { {"user_id", "token", "address"}, ... }`.
local users
local count

function init(args)
  users = dofile(args[1])
  count = #users
  math.randomseed(os.time())
  wrk.method = "POST"
  wrk.path = "/api/scores/update"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local user = users[math.random(count)]
  wrk.headers["X-Forwarded-For"] = user[3]
  local body = '{"user_id":"' .. user[1] .. '","score_delta":' .. math.random(1000)
    .. ',"auth_token":"' .. user[2] .. '"}'
  return wrk.format(nil, nil, nil, body)
end

-- One machine-readable line for bench/run.py; wrk's own report is printed above it.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,'
      .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
