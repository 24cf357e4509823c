-- Shared by the load scripts: the ids `seed` created (load-00000 … load-<N-1>), and a per-thread
-- random seed so that wrk's threads do not replay the same sequence.
local M = {}

M.customers = tonumber(os.getenv("LOAD_CUSTOMERS") or "10000")

local threads = 0
function M.setup(thread)
   threads = threads + 1
   thread:set("thread_id", threads)
end

function M.seed_random(thread_id)
   math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function M.random_id()
   return string.format("load-%05d", math.random(0, M.customers - 1))
end

return M
