"""HTTP, queue and blob triggers: one Blueprint per area. The only package (with the
local host) that imports azure.functions; each function parses, calls a service and
shapes the reply."""
