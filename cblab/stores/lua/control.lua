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
elseif action == 'restore' then
  -- a replica knows a higher generation than this record (Redis restarted empty, the
  -- key expired, or it moved on local state): continue from the highest one known.
  -- ARGV[15..20] generation, state, mode, trips in a row, opened_at (us), open_for (us)
  local gen = tonumber(ARGV[15])
  if gen > S.gen then
    S.gen, S.state, S.mode = gen, ARGV[16], ARGV[17]
    S.trips = tonumber(ARGV[18])
    S.opened_at, S.open_for = tonumber(ARGV[19]), tonumber(ARGV[20])
    S.trial_ok, S.count = 0, 0
    S.changed_at, S.reason = NOW, reason
    redis.call('DEL', T)
    if KEYS[3] then redis.call('DEL', KEYS[3]) end
    dirty, announce = true, true
  end
elseif action ~= 'read' then
  return redis.error_reply('unknown control action ' .. tostring(action))
end
result = 'ok'
