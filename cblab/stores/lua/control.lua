-- Manual control, shared by every replica. ARGV[13] action, ARGV[14] reason.
-- Forcing and resetting go anywhere (manual moves do not count as trips).
local action, reason = ARGV[13], ARGV[14]
if action == 'force_open' then
  S.mode = 'forced_open'
  move('open', NOW, reason, true)
elseif action == 'force_closed' then
  S.mode = 'forced_closed'
  move('closed', NOW, reason, true)
elseif action == 'disable' then
  S.mode = 'disabled'
  move('closed', NOW, reason, true)
elseif action == 'reset' then
  S.mode = 'normal'
  S.trips = 0
  move('closed', NOW, reason, true)
elseif action == 'reconfigure' then
  -- the state is kept, the counts restart; an OPEN wait follows the new timeout
  S.count = 0
  redis.call('DEL', KEYS[3])
  if S.state == 'open' and S.mode == 'normal' then
    S.open_for = open_duration(S.trips)
  end
  dirty, announce = true, true
elseif action ~= 'read' then
  return redis.error_reply('unknown control action ' .. tostring(action))
end
result = 'ok'
