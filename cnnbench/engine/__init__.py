"""The engine layer: everything that computes with JAX — training, heads, pretraining, similarity, timing and
the runner that turns a scenario into a measured result. It reads the config layer, the zoo and the data, and
knows nothing of results, reports or pytest."""
