"""cnnbench: a pytest plugin and benchmark suite for CNN transfer learning (JAX + Flax NNX).

Importing the package is cheap: JAX and the model zoo load only when a submodule that needs them is used.
"""

__version__ = "0.1.0"
