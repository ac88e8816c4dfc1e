-- Write a user's boost levels (a mirror of MongoDB's boost_levels document)
-- unless the hash already mirrors a newer version of it: two writers racing
-- (a purchase, a GET, the sweeper) never put older levels back.
-- KEYS[1] the user's boost levels hash; ARGV 1 the document's version, then
-- field, level pairs (services.mining.clicks.BOOST_FIELDS).
-- Reply 1 written, 0 kept (newer).
local known = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if known > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], unpack(ARGV, 2))
return 1
