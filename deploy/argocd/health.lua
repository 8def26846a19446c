-- Argo CD health check for sluice.dev/Rollout (install: docs/gitops.md).
-- Written for Argo CD's Lua 5.1 (gopher-lua) and tested under lua5.4: only the common subset.
-- Sluice's status follows Kubernetes conventions; this maps it to Argo CD's four states:
--   phase Healthy -> Healthy, Progressing -> Progressing, Paused -> Suspended, Degraded -> Degraded
-- with two checks first: a spec the controller has not seen yet is Progressing (the status
-- describes an older generation), and Stalled=True is Degraded with the condition's message.
local hs = {}

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice controller to observe the Rollout"
  return hs
end

local generation = tonumber(obj.metadata.generation)
local observed = tonumber(obj.status.observedGeneration)
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice controller to observe generation " .. string.format("%d", generation)
  return hs
end

if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Stalled" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = condition.message or condition.reason or "Stalled"
      return hs
    end
  end
end

local states = {
  Healthy = "Healthy",
  Progressing = "Progressing",
  Paused = "Suspended",
  Degraded = "Degraded",
}
local state = states[obj.status.phase or ""]
if state == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice controller to report a phase"
  return hs
end
hs.status = state
hs.message = obj.status.message or ""
return hs
