"""The HTTP server shipped inside the slim serving image.

Only this folder is copied into the image, next to onnxruntime, numpy and tokenizers: it
must import nothing else from advisor (and nothing heavier than those three packages).
Run it with ``python -m advisor.serve``; every setting comes from the environment
(see ``settings.py``).
"""
