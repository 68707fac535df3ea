-- wrk script for benchmark (e)'s form post, token round trip included.
-- Usage: wrk -s bench/wrk/form.lua URL -- <path> <run id>
-- Each wrk thread first GETs the landing page, reads its signed form token, its bot-check timestamp and the
-- session cookie, as a browser would, then posts new submissions with them (a new email each time). A post
-- answered with anything but 303 (say, the token expired) makes the thread fetch a fresh token.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  path = args[1] or "/"
  run_id = args[2] or "run"
  token = nil
  posted, refused, fetched = 0, 0, 0
end

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  if token == nil then
    return wrk.format("GET", path)
  end
  counter = counter + 1
  local body = "csrf_token=" .. urlencode(token.csrf) .. "&form_ts=" .. urlencode(token.ts) .. "&website=" ..
    "&name=" .. urlencode("Load Friend " .. counter) ..
    "&email=" .. urlencode("load" .. run_id .. "-" .. id .. "-" .. counter .. "@prospect.test") ..
    "&company=Load+Inc&consent=yes"
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
  if token.cookie then headers["Cookie"] = token.cookie end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if token == nil then
    fetched = fetched + 1
    local csrf = body:match('name="csrf_token"[^>]*value="([^"]*)"')
    local ts = body:match('name="form_ts"[^>]*value="([^"]*)"')
    if csrf and ts then
      local cookie = headers["Set-Cookie"] or headers["set-cookie"]
      token = {csrf = csrf, ts = ts, cookie = cookie and cookie:match("^([^;]+)") or nil}
    end
  elseif status == 303 then
    posted = posted + 1
  else
    refused = refused + 1
    token = nil
  end
end

function done(summary, latency, requests)
  local p, r, f = 0, 0, 0
  for _, thread in ipairs(threads) do
    p = p + thread:get("posted")
    r = r + thread:get("refused")
    f = f + thread:get("fetched")
  end
  io.write(string.format("FORM posted=%d refused=%d token_fetches=%d\n", p, r, f))
end
