"""Runnable example agents, each with its flags file (installed as ``flagmw.examples``)."""
