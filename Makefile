# Recipes for make: rebuild what the change needs, show the plan, or rebuild everything.
# Extra flags: make sync ARGS="--json".

.PHONY: sync sync-plan sync-all

sync:
	cargo xtask sync $(ARGS)

sync-plan:
	cargo xtask sync --plan $(ARGS)

sync-all:
	cargo xtask sync --all $(ARGS)
