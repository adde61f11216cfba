"""Adapters that depend on another ecosystem's package (installed as ``flagmw.integrations``).

Each module says which extra it needs; importing one without its extra raises an
``ImportError`` naming the ``pip install 'flagmw[...]'`` to run.
"""
