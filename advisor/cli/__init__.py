"""The command line: the only layer of advisor that talks to the terminal."""
