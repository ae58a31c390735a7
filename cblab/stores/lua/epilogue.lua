-- Write back, refresh the TTLs (abandoned breakers expire), announce, answer.
if dirty then
  redis.call('HSET', H, 'state', S.state, 'mode', S.mode, 'gen', S.gen,
    'opened_at', S.opened_at, 'open_for', S.open_for, 'trips', S.trips,
    'count', S.count, 'trial_ok', S.trial_ok, 'serial', S.serial,
    'trips_total', S.trips_total, 'trial_timeouts', S.trial_timeouts)
  redis.call('PEXPIRE', H, TTL)
  if redis.call('EXISTS', T) == 1 then redis.call('PEXPIRE', T, TTL) end
end
local inflight = redis.call('ZCARD', T)
local snapshot = {S.state, S.mode, S.gen, S.count, S.opened_at, S.open_for, NOW,
  inflight, S.trial_ok, S.trips_total, S.trial_timeouts}
if announce then
  redis.call('PUBLISH', CHANNEL, cjson.encode({name = NAME, s = snapshot, m = moves}))
end
local reply = {result, extra}
for _, v in ipairs(snapshot) do reply[#reply + 1] = v end
for _, m in ipairs(moves) do
  for _, v in ipairs(m) do reply[#reply + 1] = v end
end
return reply
