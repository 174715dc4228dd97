"""The model registry: flavors, versions, signatures, environments, aliases."""
