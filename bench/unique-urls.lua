-- wrk script: every request asks for another URL (the configured path with ?r=RUN&n=COUNTER), so
-- a cache in front misses every time, in every round (each round is a new wrk run: RUN tells them
-- apart). Used by UNIQUE_URLS=1 bench/run.sh.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, wrk.path .. "?r=" .. run .. "&n=" .. n)
end
