-- wrk script: POSTs one JSON-RPC call with the admin secret.
-- Configured through the environment: BENCH_SECRET, BENCH_METHOD, BENCH_PARAMS (JSON object),
-- BENCH_SIDS (optional: number of users b-0000000.. to spread get_balance calls over),
-- BENCH_PAYERS (optional: record_payment with a new payment id per call, spread over
-- users u-0000..; the ids differ per thread and per run).
local secret = os.getenv("BENCH_SECRET")
local method = os.getenv("BENCH_METHOD") or "get_balance"
local params = os.getenv("BENCH_PARAMS") or "{}"
local sids = tonumber(os.getenv("BENCH_SIDS") or "0")
local payers = tonumber(os.getenv("BENCH_PAYERS") or "0")
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local run = os.time()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. secret
local counter = 0
request = function()
  counter = counter + 1
  local p = params
  if sids > 0 then
    p = string.format('{"user_sid":"b-%07d"}', (counter * 7919) % sids)
  elseif payers > 0 then
    p = string.format('{"payment_id":"bench-%d-%d-%d","user_sid":"u-%04d","amount_cents":1}',
      run, tid or 0, counter, counter % payers)
  end
  local body = string.format('{"jsonrpc":"2.0","id":%d,"method":"%s","params":%s}', counter, method, p)
  return wrk.format(nil, nil, nil, body)
end
local errors = 0
response = function(status, headers, body)
  if status ~= 200 or string.find(body, '"error"') then errors = errors + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH rps=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, summary.errors.status))
end
