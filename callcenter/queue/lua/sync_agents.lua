-- ARGV[4] JSON [[extension, name], ...]: configured operators. New ones logged out; names
-- updated; unconfigured ones dropped once logged out. Returns the number of changes.
local wanted, order = {}, {}
for _, pair in ipairs(cjson.decode(ARGV[4])) do
  wanted[pair[1]] = pair[2]; order[#order + 1] = pair[1]
end
local changes = 0
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local a = cjson.decode(all[i + 1])
  if wanted[a.extension] == nil and a.status == 'logged_out' then
    redis.call('HDEL', KEYS[3], a.extension)
    redis.call('PUBLISH', 'hotline:events', cjson.encode(
      {type = 'agent', tenant = tenant, cause = 'removed', at_ms = now, extension = a.extension}))
    changes = changes + 1
  end
end
for _, ext in ipairs(order) do
  local a = get_agent(ext)
  if not a then
    put_agent({extension = ext, name = wanted[ext], status = 'logged_out', since = now,
               reachable = false, v = -1}, 'configured')
    changes = changes + 1
  elseif a.name ~= wanted[ext] then
    a.name = wanted[ext]; put_agent(a, 'configured'); changes = changes + 1
  end
end
return changes
