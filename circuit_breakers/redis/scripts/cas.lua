-- Compare and set one field of a hash. KEYS[1]: the hash; ARGV: field, '1' if a value is expected,
-- the expected value, '1' to set (else delete), the new value, a channel to publish on ('' for
-- none), the message. Returns 1 if it changed hands, 0 if the field held something else.
local current = redis.call('HGET', KEYS[1], ARGV[1])
local expected = false
if ARGV[2] == '1' then expected = ARGV[3] end
if current ~= expected then return 0 end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
return 1
