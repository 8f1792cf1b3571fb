-- wrk script for bench/webhook_ack.py: POST pre-signed 17TRACK pushes, rotating through them.
-- Argument after "--": a file with one "<sign> <body>" per line (wrk has no sha256 to sign with).
local started = 0
function setup(thread)
  -- each wrk thread has its own Lua state: start them at different points of the rotation
  thread:set("offset", started * 389)
  started = started + 1
end

function init(args)
  bodies, signs = {}, {}
  for line in io.lines(args[1]) do
    local sign, body = line:match("^(%x+) (.*)$")
    signs[#signs + 1], bodies[#bodies + 1] = sign, body
  end
  i = offset % #bodies
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/webhooks/17track",
    { ["Content-Type"] = "application/json", ["sign"] = signs[i] }, bodies[i])
end
