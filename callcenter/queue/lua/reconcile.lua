-- ARGV[4] instance, ARGV[5] keep ids JSON, ARGV[6] adopt ids JSON. This instance's calls not in
-- keep (their channels are gone) are dropped; adopted calls (another instance died) become ours.
local keep, adopt = {}, {}
for _, id in ipairs(cjson.decode(ARGV[5])) do keep[id] = true end
for _, id in ipairs(cjson.decode(ARGV[6])) do adopt[id] = true end
local dropped, adopted = 0, 0
local calls = redis.call('HGETALL', KEYS[2])
for i = 1, #calls, 2 do
  local c = cjson.decode(calls[i + 1])
  if adopt[c.call_id] then
    c.instance = ARGV[4]; put_call(c); adopted = adopted + 1
  elseif c.instance == ARGV[4] and not keep[c.call_id] then
    drop_call(c, 'gone'); dropped = dropped + 1
  end
end
return {dropped, adopted}
