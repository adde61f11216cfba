"""The rollout store backends, one module each: ``memory``, ``sqlite``, ``postgres``,
``redis`` (see :mod:`flagmw.rollout.store`)."""
