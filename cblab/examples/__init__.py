"""Small MCP servers shipped with cblab as default targets (not part of the lab itself)."""
