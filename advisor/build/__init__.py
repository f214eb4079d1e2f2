"""The Dockerfile builder (``dockerfile.py``), kept apart from the slim image build in ``advisor/slim``."""
