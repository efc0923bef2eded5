-- wrk script: POST the JSON body read from $BENCH_BODY_FILE with a bearer key, and print
-- one machine-readable summary line (latencies in microseconds) for benchmarks/run.py.
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk-bench")

-- With $BENCH_VARY_BASE, every request differs: its first message content (or input) starts
-- with a number counting up from that base (a cache miss each time); otherwise the file's body.
local base = tonumber(os.getenv("BENCH_VARY_BASE") or "")
if base then
  local counter = base
  local _, stop = string.find(wrk.body, '"content":"', 1, true)
  if not stop then _, stop = string.find(wrk.body, '"input":"', 1, true) end
  local head, tail = string.sub(wrk.body, 1, stop), string.sub(wrk.body, stop + 1)
  request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil, head .. counter .. " " .. tail)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"mean_us\":%.2f," ..
    "\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"max_us\":%d,\"err_connect\":%d," ..
    "\"err_read\":%d,\"err_write\":%d,\"err_status\":%d,\"err_timeout\":%d}\n",
    summary.requests, summary.duration, summary.bytes, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
