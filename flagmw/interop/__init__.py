"""Interoperability with the flag files of other systems.

* :mod:`flagmw.interop.flagd_export` — a snapshot rev as a flagd flag-definition file;
* :mod:`flagmw.interop.flagd_import` — a flagd file as a flagmw flags file (with
  :mod:`~flagmw.interop.flagd_flags`: keys, types, the array form, and
  :mod:`~flagmw.interop.flagd_split`: ``fractional`` as experiments and rollouts);
* :mod:`flagmw.interop.flagd_conditions` — flagmw conditions ↔ JsonLogic;
* :mod:`flagmw.interop.jsonlogic` — flagd's JsonLogic dialect, evaluated (for checks);
* :mod:`flagmw.interop.flagd_bucketing` — flagd's ``fractional`` operator.

Nothing here touches the network or reads a file named inside a document. See
``docs/flagd.md``.
"""
