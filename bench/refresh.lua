-- wrk script for POST /auth/refresh: every request spends one refresh
-- token and the response's new one goes back into the pool, as real
-- clients rotate. Run with one wrk thread (-t1) and fewer connections
-- than tokens in BENCH_REFRESH_FILE (one per line, each from its own
-- login), so no token is ever sent twice (that would be reuse, and end
-- the session).
local pool = {}

init = function(args)
  for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do
    if #line > 0 then pool[#pool + 1] = line end
  end
end

request = function()
  local token = table.remove(pool) or "exhausted"
  return wrk.format("POST", "/auth/refresh",
    {["Content-Type"] = "application/x-www-form-urlencoded"},
    "grant_type=refresh_token&refresh_token=" .. token)
end

response = function(status, headers, body)
  if status == 200 then
    local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if token then pool[#pool + 1] = token end
  end
end
