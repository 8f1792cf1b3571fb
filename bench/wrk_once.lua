-- wrk script for bench/e2e.py: send every push exactly once, in file order, then stop.
-- Arguments after "--": the pushes file (one "<sign> <body>" per line), the wrk thread count, and
-- a marker path prefix. Thread t sends lines t+1, t+1+T, ...; when all its answers are in it
-- writes "<sent> <non-200 answers>" to <prefix><t>, which is how the bench knows it is done.
local started = 0
function setup(thread)
  thread:set("tid", started)
  started = started + 1
end

function init(args)
  bodies, signs = {}, {}
  local n, threads = 0, tonumber(args[2])
  for line in io.lines(args[1]) do
    if n % threads == tid then
      local sign, body = line:match("^(%x+) (.*)$")
      signs[#signs + 1], bodies[#bodies + 1] = sign, body
    end
    n = n + 1
  end
  marker, nexti, answered, failed = args[3] .. tid, 1, 0, 0
  -- wrk 4 calls request() once on thread 0's state to check it (script_verify_request) and never
  -- sends that one: answer it with the filler so that no push is skipped.
  dry_run = tid == 0
end

function request()
  if dry_run then
    dry_run = false
  elseif nexti <= #bodies then
    local i = nexti
    nexti = nexti + 1
    return wrk.format("POST", "/webhooks/17track",
      { ["Content-Type"] = "application/json", ["sign"] = signs[i] }, bodies[i])
  end
  -- All sent: idle connections ask for a cheap 404 until the last answers are in.
  return wrk.format("GET", "/bench-idle")
end

function response(status, headers, body)
  if status == 404 then return end
  answered = answered + 1
  if status ~= 200 then failed = failed + 1 end
  if answered == #bodies then
    local f = io.open(marker .. ".tmp", "w")
    f:write(string.format("%d %d", nexti - 1, failed))
    f:close()
    os.rename(marker .. ".tmp", marker)  -- atomic: the bench never reads a half-written file
    wrk.thread:stop()
  end
end
