"""EmoFace bridge, the edge: every clock, socket, process and terminal lives here.

Mappings and the frame protocol, transports, the real-time loops (``runtime/``), batch baking
(``bake/``), the dialogue service (``service/``) and the ``emoface`` command (docs/architecture.md).
``tests/test_layers.py`` enforces (R4, R5):

* ``protocol`` imports only the standard library; ``errors``, ``arkit`` and ``mapping`` are at
  the bottom; ``transports/*`` import ``protocol`` and ``arkit``; ``runtime/*`` import
  transports, mapping, sources and controls (and the core); ``bake/*`` import mapping and the
  core; ``service/*`` import ``runtime`` and ``bake``; no command imports another (shared
  options: ``commands/options.py``) and only ``cli.py`` imports commands.
* Every loop that releases frames at a rate (``runtime/clips``, ``lines``, ``live``) takes due
  times, lateness and skip decisions from ``runtime/clock.FrameClock``.
"""
