-- wrk script: the bare form floor (bench/bare_form_app.py). The same body as bench/wrk/form.lua's posts, a new
-- email each time; nothing is checked, so no token is fetched.
-- Usage: wrk -s bench/wrk/post_static.lua URL -- <path> <run id>
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  path = args[1] or "/"
  run_id = args[2] or "run"
end

function request()
  counter = counter + 1
  local body = "csrf_token=1763890000.abcdefghijklmnop.0123456789abcdef0123456789abcdef" ..
    "&form_ts=1763890000.000.0123456789abcdef0123456789abcdef&website=" ..
    "&name=Load+Friend+" .. counter .. "&email=load" .. run_id .. "-" .. id .. "-" .. counter ..
    "%40prospect.test&company=Load+Inc&consent=yes"
  return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
