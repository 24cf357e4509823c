-- (b) 90/10 read/write mix: 90% GET /customers/{id}, 10% PATCH of a random known customer with a
-- small JSON merge patch (a new phone number; no If-Match, so no 412s are expected).
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup

local patch_headers = { ["Content-Type"] = "application/merge-patch+json" }

function init(args)
   common.seed_random(thread_id)
end

function request()
   local path = "/customers/" .. common.random_id()
   if math.random(10) == 1 then
      local body = string.format('{"phone":"+44207%07d"}', math.random(0, 9999999))
      return wrk.format("PATCH", path, patch_headers, body)
   end
   return wrk.format("GET", path)
end
