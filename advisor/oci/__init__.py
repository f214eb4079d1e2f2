"""Image I/O: references, daemonless sources, streaming layer walk, deterministic writer."""
