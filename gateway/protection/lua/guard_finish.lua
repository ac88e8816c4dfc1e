-- After the service answered: store the answer under the record the request
-- claimed, or release the claim so a retry runs again. Only the lease holder
-- may do either (a lease that expired and was claimed again is left alone).
-- KEYS[1] the record; ARGV: [1] the lease value, [2] the record to store
-- ('' = release), [3] retention ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
