"""The configuration layer: suites, scenarios, strategies, quadrants and training settings as typed data.

Nothing here imports JAX or any layer above it; names that only the zoo, the data targets or the heads know are
checked against a :class:`cnnbench.config.catalog.Catalog` that the caller passes in.
"""
