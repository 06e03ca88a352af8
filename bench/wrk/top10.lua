-- GET /api/scores/top10 on every request (the same request for the bare app, which ignores it).
-- usage: wrk -s bench/wrk/top10.lua http://127.0.0.1:PORT
wrk.method = "GET"
wrk.path = "/api/scores/top10"

-- One machine-readable line for bench/run.py; wrk's own report is printed above it.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,'
      .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
