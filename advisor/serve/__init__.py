"""The HTTP server shipped inside the slim serving image.

Only this folder is copied into the image, next to onnxruntime, numpy and tokenizers (the
model) and uvicorn, h11, click and prometheus_client (the transport and the metrics): it
must import nothing else from advisor. Run it with ``python -m advisor.serve``; every
setting comes from the environment (see ``settings.py``).

``app`` answers (routes, limits, metrics, access log), ``batching`` coalesces concurrent
requests into model runs, ``oip`` speaks the Open Inference Protocol v2, ``protocol`` and
``server`` carry HTTP on uvicorn, ``model`` runs the ONNX graph and the task's head.
"""
