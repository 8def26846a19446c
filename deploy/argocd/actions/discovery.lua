-- Argo CD resource actions for sluice.dev/Rollout: which ones apply now (install: docs/gitops.md).
-- Written for Argo CD's Lua 5.1 (gopher-lua) and tested under lua5.4: only the common subset.
-- Every action is listed; those the controller would answer with a RequestIgnored Event are
-- disabled, read from the same status fields the engine decides on:
--   promote, promote-full, abort: a revision in flight (current differs from stable, not aborted),
--                                 abort also while a post-promotion analysis still runs
--   retry:  the current revision was aborted
--   pause:  not already paused by request;  resume: paused by request
local actions = {}
local status = obj.status or {}

local aborted = false
if status.abort ~= nil then
  aborted = status.abort.revision == nil or status.abort.revision == status.currentRevision
end

local in_flight = status.currentRevision ~= nil and status.stableRevision ~= nil
  and status.currentRevision ~= status.stableRevision and not aborted

local post_promotion = false
if status.analysisRuns ~= nil then
  for _, run in ipairs(status.analysisRuns) do
    if run.kind == "postPromotion" and (run.phase == "Pending" or run.phase == "Running")
      and status.currentRevision == status.stableRevision then
      post_promotion = true
    end
  end
end

local paused_by_user = false
if status.pauseConditions ~= nil then
  for _, condition in ipairs(status.pauseConditions) do
    if condition.reason == "PausedByUser" then
      paused_by_user = true
    end
  end
end

actions["promote"] = {["disabled"] = not in_flight}
actions["promote-full"] = {["disabled"] = not in_flight}
actions["abort"] = {["disabled"] = not (in_flight or post_promotion)}
actions["retry"] = {["disabled"] = not aborted}
actions["pause"] = {["disabled"] = paused_by_user}
actions["resume"] = {["disabled"] = not paused_by_user}
return actions
