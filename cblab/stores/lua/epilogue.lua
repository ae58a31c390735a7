-- Write back, refresh the TTLs (abandoned breakers expire), announce, answer.
if dirty then
  redis.call('HSET', H, 'state', S.state, 'mode', S.mode, 'gen', S.gen,
    'opened_at', S.opened_at, 'open_for', S.open_for, 'trips', S.trips,
    'count', S.count, 'trial_ok', S.trial_ok, 'serial', S.serial,
    'trips_total', S.trips_total, 'trial_timeouts', S.trial_timeouts,
    'changed_at', S.changed_at, 'reason', S.reason)
  redis.call('PEXPIRE', H, TTL)
  if redis.call('EXISTS', T) == 1 then redis.call('PEXPIRE', T, TTL) end
end
local inflight = redis.call('ZCARD', T)
local snapshot = {S.state, S.mode, S.gen, S.count, S.opened_at, S.open_for, NOW,
  inflight, S.trial_ok, S.trips, S.trips_total, S.trial_timeouts, S.changed_at, S.reason}
if announce then
  -- cjson writes numbers with 14 digits: send microsecond times as strings
  local function exact(list)
    local out = {}
    for i, v in ipairs(list) do
      if type(v) == 'number' then out[i] = string.format('%.0f', v) else out[i] = v end
    end
    return out
  end
  local m = {}
  for i, mv in ipairs(moves) do m[i] = exact(mv) end
  redis.call('PUBLISH', CHANNEL, cjson.encode({name = NAME, s = exact(snapshot), m = m}))
end
local reply = {result, extra}
for _, v in ipairs(snapshot) do reply[#reply + 1] = v end
for _, m in ipairs(moves) do
  for _, v in ipairs(m) do reply[#reply + 1] = v end
end
return reply
