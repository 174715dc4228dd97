"""The command-line edge: `shipyard NOUN VERB`, each command one call into a service function."""
