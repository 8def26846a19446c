-- Argo CD resource action "resume" for sluice.dev/Rollout (install: docs/gitops.md).
-- Writes the request annotation exactly as `sluice resume` does: sluice.dev/request: <kind>@<id>.
-- Only the annotation changes, never the spec, so the Application stays Synced. The id must be
-- fresh for each click (the controller acts once per id): the UTC time, plus the Rollout's
-- resourceVersion, which every write (including the previous click's) changes.
local os = require("os")
local kind = "resume"
local id = "argocd-" .. os.date("!%Y%m%dT%H%M%SZ")
if obj.metadata.resourceVersion ~= nil then
  local version = string.gsub(tostring(obj.metadata.resourceVersion), "[^A-Za-z0-9%.:_%+%-]", "")
  id = string.sub(id .. "-" .. version, 1, 128)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["sluice.dev/request"] = kind .. "@" .. id
return obj
