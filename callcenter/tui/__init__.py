"""Terminal user interfaces (Textual): the only package that imports ``textual``.

The face exports no names: each app is imported from its module when its command starts
(:mod:`~callcenter.tui.agent_console`, :mod:`~callcenter.tui.supervisor_console`,
:mod:`~callcenter.tui.ivr_simulator`), so importing this package loads no Textual.
"""

__all__: list[str] = []
