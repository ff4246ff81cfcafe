-- wrk script: every request a new question (so every lookup is a miss that the embedding core
-- must embed), an Ollama chat body. Used by loadtest/semantic.sh.
local counter = 0
local thread_id = 0
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  counter = 0
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"model":"llama3","stream":false,"messages":[{"role":"user","content":"Question %d-%d about topic %d: how does it work?"}]}',
    tid, counter, counter % 97)
  return wrk.format("POST", "/api/chat", {["Content-Type"] = "application/json"}, body)
end
