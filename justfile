# Recipes for `just`: rebuild what the change needs, show the plan, or rebuild everything.

# Rebuild, through Tilt, the services your change needs
sync *ARGS:
    cargo xtask sync {{ARGS}}

# Show which steps a sync would run, and why (no Tilt call)
sync-plan *ARGS:
    cargo xtask sync --plan {{ARGS}}

# Rebuild every service, whatever changed
sync-all *ARGS:
    cargo xtask sync --all {{ARGS}}
