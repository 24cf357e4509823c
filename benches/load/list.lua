-- (c) list pages: GET /customers?limit=25, on a random page of the whole listing. The cursors are
-- the real ones `seed` collected by walking every page (file in LOAD_CURSORS, one a line); the
-- first page, which has no cursor, is one of the choices.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup

local paths = {}

function init(args)
   common.seed_random(thread_id)
   paths[1] = "/customers?limit=25"
   local file = os.getenv("LOAD_CURSORS")
   if file then
      for cursor in io.lines(file) do
         paths[#paths + 1] = "/customers?limit=25&cursor=" .. cursor
      end
   end
end

function request()
   return wrk.format("GET", paths[math.random(#paths)])
end
