-- (a) GET /customers/{id} over random known ids. Also drives hello-server (which answers 200 to
-- any path) so that both servers see the same requests.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup

function init(args)
   common.seed_random(thread_id)
end

function request()
   return wrk.format("GET", "/customers/" .. common.random_id())
end
