"""Unpack an image and run its code without a container engine (``runner``), and the
environments the benchmark's probes and servers run in (``environment``)."""
