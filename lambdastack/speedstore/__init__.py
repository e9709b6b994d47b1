"""The speed-store interface (`base`) and its implementations (`redis`, `memory`), with the feed's
one-round-trip script (`feedscript`)."""
