"""The results layer: typed scenario records, their aggregation over seeds (the one place a mean, a median or a
noise is defined), the recommendation check and the quality gate. Plain Python, no JAX."""
