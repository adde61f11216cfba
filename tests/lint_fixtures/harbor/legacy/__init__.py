"""Code from the Python 2 era, never ported."""
