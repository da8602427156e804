-- One wrk script for every case, set through the environment:
--   BENCH_METHOD, BENCH_PATH, BENCH_BODY (text), BENCH_KEY (sent as `Authorization: PLKEY <key>`)
--   BENCH_CLOSE: if set, each request asks for its connection to be closed after the answer
--     (`Connection: close`), so that wrk opens a new connection per request
--   BENCH_POOL: a file of items (tokens, tids), one a line; each request uses the next item in
--     place of `{item}` in BENCH_PATH and BENCH_BODY, every item once across all threads
--     (BENCH_THREADS of them); a thread that runs out stops.
-- done() prints one line `BENCH_JSON {...}` for benchmarks/run.py.

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local key = os.getenv("BENCH_KEY")
local pool_file = os.getenv("BENCH_POOL")
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")

local threads = {}
local created = 0

function setup(thread)
   thread:set("id", created)
   created = created + 1
   table.insert(threads, thread)
end

local headers = {}
if body then headers["Content-Type"] = "application/json" end
if key then headers["Authorization"] = "PLKEY " .. key end
if os.getenv("BENCH_CLOSE") then headers["Connection"] = "close" end

local items = nil
local next_item = 1
local fixed = nil

function init(args)
   if pool_file then
      items = {}
      local index = 0
      for line in io.lines(pool_file) do
         if index % thread_count == id then table.insert(items, line) end
         index = index + 1
      end
   else
      fixed = wrk.format(method, path, headers, body)
   end
   exhausted = 0
end

function request()
   if fixed then return fixed end
   local item = items[next_item]
   if item == nil then
      -- Out of items: stop, and send something harmless meanwhile (counted in `exhausted`).
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/_emulator/health")
   end
   next_item = next_item + 1
   local function fill(text)
      if text == nil then return nil end
      return (text:gsub("{item}", item))
   end
   return wrk.format(method, fill(path), headers, fill(body))
end

function done(summary, latency, requests)
   local ran_out = 0
   for _, thread in ipairs(threads) do ran_out = ran_out + (thread:get("exhausted") or 0) end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
      '"mean_us": %.1f, "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
      '"timeout": %d}, "ran_out": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout,
      ran_out))
end
