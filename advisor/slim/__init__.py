"""Build the slim serving image: probe the base, fetch wheels for it, assemble the layers.

``build_serving_image(BuildConfig) -> BuildResult`` (in ``image.py``) is the entry point the
CLI calls; ``advisor.sandbox.runner.run_image`` starts any built image without a Docker engine.
"""
