-- wrk script for POST /auth/login with the benchmark user's password
-- (BENCH_PASSWORD): each request is an argon2id verification.
local body

init = function(args)
  body = "username=bench&password=" .. os.getenv("BENCH_PASSWORD")
end

request = function()
  return wrk.format("POST", "/auth/login",
    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
