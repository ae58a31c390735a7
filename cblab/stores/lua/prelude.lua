-- Shared breaker state: one hash per breaker (KEYS[1]) and its half-open trial
-- leases (KEYS[2], a sorted set: member = trial serial, score = admitted at).
-- KEYS[3] is a sliding-window policy's shared counts (see window.lua). All keys
-- carry the same {hash tag}, so one breaker lives in one cluster slot.
-- Time comes from the Redis server (TIME, microseconds), never from a client:
-- replicas with skewed clocks agree on open-until and lease expiry.
-- This prelude is prepended to every operation script; epilogue.lua is appended.
local H, T = KEYS[1], KEYS[2]
local CHANNEL, TTL, NAME = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local FAILURE_THRESHOLD, SUCCESS_THRESHOLD = tonumber(ARGV[4]), tonumber(ARGV[5])
local HALF_OPEN_MAX, TIMEOUT = tonumber(ARGV[6]), tonumber(ARGV[7])
local BACKOFF, MAX_TIMEOUT = tonumber(ARGV[8]), tonumber(ARGV[9])
local TRIAL_LIMIT, POLICY = tonumber(ARGV[10]), ARGV[11]

-- ARGV[12] is empty, except under RedisStore(client_time=True) (tests that drive a
-- manual clock): then it is the client's time. Operation arguments start at ARGV[13].
local NOW
if ARGV[12] ~= '' then
  NOW = tonumber(ARGV[12])
else
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local raw = redis.call('HMGET', H, 'state', 'mode', 'gen', 'opened_at', 'open_for',
  'trips', 'count', 'trial_ok', 'serial', 'trips_total', 'trial_timeouts', 'changed_at',
  'reason')
local S = {
  state = raw[1] or 'closed', mode = raw[2] or 'normal', gen = tonumber(raw[3] or '0'),
  opened_at = tonumber(raw[4] or '0'), open_for = tonumber(raw[5] or '0'),
  trips = tonumber(raw[6] or '0'), count = tonumber(raw[7] or '0'),
  trial_ok = tonumber(raw[8] or '0'), serial = tonumber(raw[9] or '0'),
  trips_total = tonumber(raw[10] or '0'), trial_timeouts = tonumber(raw[11] or '0'),
  changed_at = tonumber(raw[12] or '0'), reason = raw[13] or 'created',
}
local dirty = false       -- write the hash back
local announce = false    -- publish a snapshot (state or count-zeroness changed)
local moves = {}          -- {from, to, at, reason, gen} per transition
local result, extra = 'none', 0

local function open_duration(trips)
  local d = TIMEOUT * (BACKOFF ^ (math.max(trips, 1) - 1))
  if MAX_TIMEOUT > 0 and d > MAX_TIMEOUT then d = MAX_TIMEOUT end
  return math.floor(d)
end

-- The one transition function: bumps the generation (the fence), clears trials.
local function move(to, at, reason, manual)
  local from = S.state
  S.state = to
  S.gen = S.gen + 1
  S.trial_ok = 0
  S.changed_at, S.reason = at, reason
  redis.call('DEL', T)
  if to == 'open' then
    if not manual then
      S.trips = S.trips + 1
      S.trips_total = S.trips_total + 1
    end
    S.opened_at = at
    S.open_for = open_duration(S.trips)
  elseif to == 'closed' then
    S.trips = 0
    S.count = 0
  end
  if KEYS[3] then redis.call('DEL', KEYS[3]) end  -- a shared window starts afresh
  dirty, announce = true, true
  moves[#moves + 1] = {from, to, at, reason, S.gen}
end

local function trip_reason()
  if POLICY == 'cumulative' then
    return S.count .. ' failures since the breaker closed'
  end
  return S.count .. ' consecutive failures'
end
